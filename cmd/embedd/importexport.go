package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/embedd/embedd/index"
)

// importCmd streams a JSONL or .npy file into a collection of a data
// directory that no server has open; it creates the collection when --dim
// is given and it does not exist. An import that fails removes the
// collection it created; into an existing collection, the file is checked
// whole first, so bad input stores nothing (a failure while writing, such as
// a full disk, leaves the batches before it stored, and says how many).
func importCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var config string
	configFlag(fs, &config)
	dataDir := dataDirFlag(fs)
	dim := fs.Int("dim", 0, "create the collection with this dimension if it does not exist (an existing one must have it)")
	metric := fs.String("metric", "cosine", "metric of a created collection: cosine, dot or l2")
	idsFile := fs.String("ids", "", "for .npy input only: a `file` of ids, one per line (default: row numbers)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: embedd import [flags] COLLECTION FILE.jsonl|FILE.npy\n\nStreams records into a collection (the server must not have it open: upsert\nthrough \"embedctl upsert\" while it runs; a running server serves a\ncollection imported beside it once the import ends): JSONL lines {\"id\", \"vector\",\n\"metadata\"}, or a 2-D float32 .npy array. A failed import removes the\ncollection it created; into an existing collection the file is checked whole\nfirst, so bad input stores nothing.\n\nflags:")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	name, path := fs.Arg(0), fs.Arg(1)
	npy := strings.HasSuffix(path, ".npy")
	if *idsFile != "" && !npy {
		fmt.Fprintf(stderr, "embedd import: --ids %s is for .npy input only: the JSONL lines of %s carry their own \"id\"\n", *idsFile, path)
		return 2
	}
	fail := func(err error) int { fmt.Fprintf(stderr, "embedd import: %v\n", err); return 1 }
	data, err := dataDirFrom(config, *dataDir)
	if err != nil {
		return fail(err)
	}
	dir, err := index.CollectionDir(data, name)
	if err != nil {
		return fail(err)
	}
	c, created, err := openForImport(dir, name, *dim, *metric)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var idf *os.File
	if err == nil && npy && *idsFile != "" {
		if idf, err = os.Open(*idsFile); err == nil {
			defer idf.Close()
		}
	}
	// run imports the file, or with check only checks it (index.CheckJSONL,
	// CheckNPY).
	run := func(check bool) (int, error) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
		if !npy {
			if check {
				return c.CheckJSONL(ctx, f)
			}
			return c.ImportJSONL(ctx, f)
		}
		var ids io.Reader
		if idf != nil {
			if _, err := idf.Seek(0, io.SeekStart); err != nil {
				return 0, err
			}
			ids = idf
		}
		if check {
			return c.CheckNPY(ctx, bufio.NewReaderSize(f, 1<<20), ids)
		}
		return c.ImportNPY(ctx, bufio.NewReaderSize(f, 1<<20), ids)
	}
	var n int
	if err == nil && !created {
		// Into an existing collection: check the whole file first, so a
		// bad record stores nothing.
		if _, err = run(true); err != nil {
			return fail(fmt.Errorf("%w (nothing was stored in %s)", err, name))
		}
	}
	if err == nil {
		n, err = run(false)
	}
	if err != nil {
		if created {
			if rerr := errors.Join(c.Close(), os.RemoveAll(dir)); rerr != nil {
				return fail(fmt.Errorf("%w (and removing collection %s, created for this import: %v)", err, name, rerr))
			}
			return fail(fmt.Errorf("%w (collection %s, created for this import, is removed again)", err, name))
		}
		return fail(fmt.Errorf("%w (%d records before it are stored in %s; importing the fixed file again replaces them by id)", err, n, name))
	}
	if err := c.Close(); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "imported %d records into %s\n", n, name)
	return 0
}

// openForImport opens collection name in dir for writing, creating it with
// dim and metric when it does not exist and dim is given; created says it
// did. The errors say what to do: a collection the server holds, one that
// does not exist without --dim, a --dim that is not the collection's.
func openForImport(dir, name string, dim int, metric string) (c *index.Collection, created bool, err error) {
	c, err = index.Open(dir)
	switch {
	case err == nil:
		if dim > 0 && c.Dim() != dim {
			return nil, false, errors.Join(fmt.Errorf("--dim %d: collection %s exists with dimension %d", dim, name, c.Dim()), c.Close())
		}
		return c, false, nil
	case errors.Is(err, index.ErrLocked):
		return nil, false, fmt.Errorf("collection %s is held by a running server (%s is locked): stop the server to import into it, or upsert through the server with \"embedctl upsert %s\"", name, dir, name)
	case !errors.Is(err, index.ErrNotFound):
		return nil, false, fmt.Errorf("collection %s: %w", name, err)
	case dim <= 0:
		return nil, false, fmt.Errorf("collection %s does not exist in %s: give --dim N (and --metric) to create it", name, filepath.Dir(dir))
	}
	m, err := index.ParseMetric(metric)
	if err != nil {
		return nil, false, err
	}
	if c, err = index.Create(dir, index.Spec{Dim: dim, Metric: m}); err != nil {
		return nil, false, fmt.Errorf("creating collection %s: %w", name, err)
	}
	return c, true, nil
}

// exportCmd writes a collection as JSONL; it opens it read-only, so it
// works while a server has the collection open.
func exportCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var config string
	configFlag(fs, &config)
	dataDir := dataDirFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: embedd export [flags] COLLECTION > out.jsonl\n\nWrites every live record as a JSONL line {\"id\", \"vector\", \"metadata\"}.\n\nflags:")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	fail := func(err error) int { fmt.Fprintf(stderr, "embedd export: %v\n", err); return 1 }
	data, err := dataDirFrom(config, *dataDir)
	if err != nil {
		return fail(err)
	}
	dir, err := index.CollectionDir(data, fs.Arg(0))
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

// dataDirOr is the data dir of --data-dir flagValue, else of the
// environment's defaults.
func dataDirOr(flagValue string) string {
	dir, _ := dataDirFrom("", flagValue)
	return dir
}

// dataDirFrom is --data-dir flagValue, else the data_dir of the config file
// config (with the environment applied; "" for none).
func dataDirFrom(config, flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	cfg, err := loadServerConfig(config)
	return cfg.DataDir, err
}
