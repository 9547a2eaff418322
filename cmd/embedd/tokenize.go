package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

func tokenizeCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var mf modelFlags
	mf.register(fs)
	truncate := fs.Bool("truncate", false, "cut each line to the model's max length")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: embedd tokenize [flags] < lines\n\nPrints one JSON line {\"ids\": [...]} per input line, with [CLS] and [SEP].\n\nflags:")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "embedd tokenize: unexpected argument %q: texts come on stdin\n", fs.Arg(0))
		return 2
	}
	m, err := mf.openTokenizing()
	if err != nil {
		fmt.Fprintf(stderr, "embedd tokenize: %v\n", err)
		return 1
	}
	defer m.Close()
	maxLen := 0
	if *truncate {
		maxLen = m.Info().MaxLength
	}
	out := bufio.NewWriterSize(stdout, 1<<16)
	var ids []int32
	var b []byte
	n := 0
	for text, err := range lines(stdin) {
		if err != nil {
			fmt.Fprintf(stderr, "embedd tokenize: %v\n", err)
			return 1
		}
		n++
		if !utf8.ValidString(text) {
			out.Flush()
			// Counted from 0, as embed's "index" and its errors are.
			fmt.Fprintf(stderr, "embedd tokenize: text %d (line %d) is not valid UTF-8\n", n-1, n)
			return 1
		}
		ids, _ = m.Encode(ids[:0], text, maxLen)
		b = append(b[:0], `{"ids":[`...)
		for i, id := range ids {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(id), 10)
		}
		b = append(b, "]}\n"...)
		out.Write(b)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "embedd tokenize: writing output: %v\n", err)
		return 1
	}
	return 0
}
