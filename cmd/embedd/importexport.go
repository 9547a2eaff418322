package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/embedd/embedd/index"
)

// importCmd streams a JSONL or .npy file into a collection of a data
// directory that no server has open (the collection's writer lock says so
// if one does); it creates the collection when --dim is given.
func importCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "the server's data `dir` (default $EMBEDD_DATA_DIR, else embedd-data)")
	dim := fs.Int("dim", 0, "create the collection with this dimension if it does not exist")
	metric := fs.String("metric", "cosine", "metric of a created collection: cosine, dot or l2")
	idsFile := fs.String("ids", "", "for .npy: a `file` of ids, one per line (default: row numbers)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: embedd import [flags] COLLECTION FILE.jsonl|FILE.npy\n\nStreams records into a collection (the server must not have it open):\nJSONL lines {\"id\", \"vector\", \"metadata\"}, or a 2-D float32 .npy array.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	name, path := fs.Arg(0), fs.Arg(1)
	fail := func(err error) int { fmt.Fprintf(stderr, "embedd import: %v\n", err); return 1 }
	dir, err := index.CollectionDir(dataDirOr(*dataDir), name)
	if err != nil {
		return fail(err)
	}
	c, err := index.Open(dir)
	if err != nil && *dim > 0 {
		m, perr := index.ParseMetric(*metric)
		if perr != nil {
			return fail(perr)
		}
		if err := os.MkdirAll(dataDirOr(*dataDir), 0o755); err != nil {
			return fail(err)
		}
		c, err = index.Create(dir, index.Spec{Dim: *dim, Metric: m})
	}
	if err != nil {
		return fail(fmt.Errorf("collection %s: %w (give --dim to create it)", name, err))
	}
	defer c.Close()
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var n int
	if strings.HasSuffix(path, ".npy") {
		var ids io.Reader
		if *idsFile != "" {
			idf, err := os.Open(*idsFile)
			if err != nil {
				return fail(err)
			}
			defer idf.Close()
			ids = idf
		}
		n, err = c.ImportNPY(ctx, bufio.NewReaderSize(f, 1<<20), ids)
	} else {
		n, err = c.ImportJSONL(ctx, f)
	}
	if err != nil {
		return fail(fmt.Errorf("%s: %w (%d records stored before it)", path, err, n))
	}
	if err := c.Close(); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "imported %d records into %s\n", n, name)
	return 0
}

// exportCmd writes a collection as JSONL; it opens it read-only, so it
// works while a server has the collection open.
func exportCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "the server's data `dir` (default $EMBEDD_DATA_DIR, else embedd-data)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: embedd export [flags] COLLECTION > out.jsonl\n\nWrites every live record as a JSONL line {\"id\", \"vector\", \"metadata\"}.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	fail := func(err error) int { fmt.Fprintf(stderr, "embedd export: %v\n", err); return 1 }
	dir, err := index.CollectionDir(dataDirOr(*dataDir), fs.Arg(0))
	if err != nil {
		return fail(err)
	}
	c, err := index.OpenReadOnly(dir)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	w := bufio.NewWriterSize(stdout, 1<<20)
	if _, err := c.ExportJSONL(context.Background(), w); err != nil {
		return fail(err)
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	return 0
}

func dataDirOr(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	cfg, _ := loadServerConfig("")
	return cfg.DataDir
}
