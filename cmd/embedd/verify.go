package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/embedd/embedd/index"
)

// verifyCmd checks collections' files against their checksums
// (index.Verify): the matrix, ids, metadata, CHECKPOINT and the WAL. It
// writes nothing, so it runs beside a server.
func verifyCmd(args []string, stdout, stderr io.Writer) int {
	fs, dataDir := dataDirFlagSet("verify", stderr, "usage: embedd verify [flags] [COLLECTION...]\n\nChecks each collection (default: all in the data directory) against its\nchecksums: every data file up to its checkpointed length, CHECKPOINT and the\nwrite-ahead log. Writes nothing; works while the server runs. Exits 1 if any\ncheck fails.")
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	data := dataDirOr(*dataDir)
	names := fs.Args()
	if len(names) == 0 {
		ents, err := os.ReadDir(data)
		if err != nil {
			fmt.Fprintf(stderr, "embedd verify: %v\n", err)
			return 1
		}
		for _, e := range ents {
			if _, err := os.Stat(filepath.Join(data, e.Name(), "manifest.json")); e.IsDir() && index.ValidName(e.Name()) == nil && err == nil {
				names = append(names, e.Name())
			}
		}
	}
	code := 0
	for _, name := range names {
		dir, err := index.CollectionDir(data, name)
		var rep index.VerifyReport
		if err == nil {
			rep, err = index.Verify(dir)
		}
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "%s: FAILED: %v\n", name, err)
			code = 1
		case rep.NoChecksums:
			fmt.Fprintf(stdout, "%s: ok, headers and lengths only (no checksums yet: written by an older version; the next checkpoint adds them)\n", name)
		default:
			fmt.Fprintf(stdout, "%s: ok (%d files, %d bytes)\n", name, len(rep.Files), rep.Bytes)
		}
	}
	return code
}
