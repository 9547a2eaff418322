package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/ftoa"
)

// embedChunk is how many stdin lines one Embed call takes: memory stays flat
// however long the input is, and batches stay full.
const embedChunk = 256

func embedCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var mf modelFlags
	mf.register(fs)
	var eo embedOptions
	eo.register(fs)
	cacheBytes := fs.Int64("cache-bytes", -1, "embedding cache size in `bytes` for repeated lines; -1 turns it off")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: embedd embed [flags] [TEXT...]\n\nEmbeds the texts given as arguments, or else one text per line of stdin,\nand prints one JSON line {\"index\": i, \"embedding\": [...]} per text.\n\nflags:")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	opts, err := eo.options()
	if err != nil {
		fmt.Fprintf(stderr, "embedd embed: %v\n", err)
		return 2
	}
	c, err := mf.openCore(stderr, *cacheBytes)
	if err != nil {
		fmt.Fprintf(stderr, "embedd embed: %v\n", err)
		return 1
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	out := bufio.NewWriterSize(stdout, 1<<16)
	defer out.Flush()
	var line []byte
	emit := func(first int, texts []string) error {
		res, err := c.Embed(ctx, mf.model, texts, opts)
		if err != nil {
			return inputError(first, err)
		}
		for i, v := range res.Vectors {
			line = appendVectorJSON(line[:0], first+i, v)
			if _, err := out.Write(line); err != nil {
				return err
			}
		}
		return nil
	}
	if fs.NArg() > 0 {
		err = emit(0, fs.Args())
	} else {
		err = forChunks(stdin, embedChunk, emit)
	}
	if err != nil {
		fmt.Fprintf(stderr, "embedd embed: %v\n", err)
		return 1
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "embedd embed: writing output: %v\n", err)
		return 1
	}
	return 0
}

// inputError renames a chunk's "texts[i]" field as the input's index
// (counted from 0, as the output's "index" is), and names the flag where
// the core's hint names the API's option.
func inputError(first int, err error) error {
	e := core.AsError(err)
	var i int
	if _, serr := fmt.Sscanf(e.Field, "texts[%d]", &i); serr == nil {
		return fmt.Errorf("text %d: %s", first+i, flagHint(e.Msg))
	}
	return e
}

// flagHint rewrites the models' hint for over-long texts, which names the
// API's truncation option, as this command's flag.
func flagHint(msg string) string {
	return strings.Replace(msg, "(allow truncation to cut it)", "(leave out --truncate=false to cut it)", 1)
}

// forChunks calls fn with consecutive chunks of up to n lines of r and the
// 0-based index of each chunk's first line.
func forChunks(r io.Reader, n int, fn func(first int, lines []string) error) error {
	chunk := make([]string, 0, n)
	first := 0
	for text, err := range lines(r) {
		if err != nil {
			return err
		}
		chunk = append(chunk, text)
		if len(chunk) == n {
			if err := fn(first, chunk); err != nil {
				return err
			}
			first += len(chunk)
			chunk = chunk[:0]
		}
	}
	if len(chunk) == 0 {
		if first == 0 {
			return errors.New("no input: give texts as arguments or lines on stdin")
		}
		return nil
	}
	return fn(first, slices.Clip(chunk))
}

// appendVectorJSON appends {"index":i,"embedding":[...]} and a newline, with
// each component in the shortest form that reads back as the same float32.
func appendVectorJSON(b []byte, i int, v []float32) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"embedding":`...)
	b = ftoa.AppendArray(b, v)
	return append(b, "}\n"...)
}
