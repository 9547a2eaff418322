package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/client"
	"github.com/embedd/embedd/ftoa"
)

// maxLineBytes bounds one input line; longer lines are an error.
const maxLineBytes = 16 << 20

// lineChunks yields consecutive chunks of up to n lines of r, each a new
// slice; a read error (or a line over maxLineBytes) ends it and is left in
// *errp.
func lineChunks(r io.Reader, n int, errp *error) iter.Seq[[]string] {
	return func(yield func([]string) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
		chunk := make([]string, 0, n)
		for sc.Scan() {
			chunk = append(chunk, sc.Text())
			if len(chunk) == n {
				if !yield(chunk) {
					return
				}
				chunk = make([]string, 0, n)
			}
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				err = fmt.Errorf("a line of stdin is over %d bytes", maxLineBytes)
			}
			*errp = fmt.Errorf("reading stdin: %w", err)
			return
		}
		if len(chunk) > 0 {
			yield(slices.Clip(chunk))
		}
	}
}

// argChunks yields args in chunks of up to n.
func argChunks(args []string, n int) iter.Seq[[]string] {
	return slices.Chunk(args, n)
}

// normalizeFlag parses --normalize.
func normalizeFlag(s string) (client.Normalization, error) {
	switch s {
	case "default", "":
		return client.NormalizeDefault, nil
	case "true":
		return client.NormalizeOn, nil
	case "false":
		return client.NormalizeOff, nil
	}
	return 0, fmt.Errorf("--normalize %q is not one of default, true, false", s)
}

func embedCmd(e *env, args []string) int {
	fs := e.newFlagSet("embed", "embed [flags] [TEXT...]\n\nEmbeds the texts given as arguments, or else one text per line of stdin (streamed\nin chunks, so memory stays flat), and prints one JSON line {\"index\": i, \"embedding\": [...]}\nper text, in order.")
	model := fs.String("model", "", "model `id` (default: the server's default model)")
	normalize := fs.String("normalize", "default", "L2-normalise vectors: default (as the model says), true, false")
	dims := fs.Int("dimensions", 0, "keep the first `n` components (Matryoshka); 0 keeps all")
	truncate := fs.Bool("truncate", true, "cut texts over the model's max length; false makes the server reject them")
	chunk := fs.Int("chunk", 256, "texts per request")
	texts, err := parseInterspersed(fs, args)
	if err != nil {
		return parseExit(err)
	}
	norm, err := normalizeFlag(*normalize)
	if err != nil {
		return e.usageErr("embed", "%v", err)
	}
	if *dims < 0 {
		return e.usageErr("embed", "--dimensions %d is not ≥ 0", *dims)
	}
	if *chunk < 1 {
		return e.usageErr("embed", "--chunk %d is not ≥ 1", *chunk)
	}
	opts := client.EmbedOptions{Model: *model, Normalize: norm, Dimensions: *dims, RejectOverlong: !*truncate}

	c, code := e.connect("embed")
	if c == nil {
		return code
	}
	defer c.Close()
	out := bufio.NewWriterSize(e.stdout, 1<<16)
	var line []byte
	emit := func(first int, vecs [][]float32) error {
		for i, v := range vecs {
			line = appendVectorJSON(line[:0], first+i, v)
			if _, err := out.Write(line); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
		}
		return nil
	}

	if len(texts) > 0 {
		// Arguments are few: plain calls, which are retried.
		first := 0
		for ch := range argChunks(texts, *chunk) {
			vecs, err := c.Embed(e.ctx, ch, opts)
			if err != nil && len(texts) > len(ch) {
				err = textsErr(first, len(ch), "text", err)
			}
			if err != nil {
				return e.fail("embed", err)
			}
			if err := emit(first, vecs); err != nil {
				return e.fail("embed", err)
			}
			first += len(ch)
		}
	} else {
		var readErr error
		n := 0
		for r, err := range c.EmbedStream(e.ctx, lineChunks(e.stdin, *chunk, &readErr), opts) {
			if ce, ok := errors.AsType[*client.ChunkError](err); ok {
				out.Flush()
				return e.fail("embed", textsErr(ce.First, ce.Len, "line", ce.Err))
			}
			if err != nil {
				out.Flush()
				return e.fail("embed", err)
			}
			if err := emit(r.First, r.Vectors); err != nil {
				return e.fail("embed", err)
			}
			n += len(r.Vectors)
		}
		if readErr != nil {
			out.Flush()
			return e.fail("embed", readErr)
		}
		if n == 0 {
			return e.usageErr("embed", "no input: give texts as arguments or lines on stdin")
		}
	}
	if err := out.Flush(); err != nil {
		return e.fail("embed", fmt.Errorf("writing output: %w", err))
	}
	return 0
}

// textsErr places a request's error among the inputs: texts are counted
// from 0, as the output's "index" is, lines from 1, as editors count them.
// A server error that names one of the request's texts ("texts[3]: ...",
// counted within the request) is placed at that text: "text 259 (line
// 260): INVALID_ARGUMENT: ...", with the models' hint for over-long texts
// naming --truncate. Otherwise the request's range is named: "lines
// 257-512: ...".
func textsErr(first, n int, what string, err error) error {
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) {
		st := gs.GRPCStatus()
		var i int
		if rest, found := strings.CutPrefix(st.Message(), "texts["); found {
			if _, serr := fmt.Sscanf(rest, "%d]: ", &i); serr == nil && i >= 0 && i < n {
				_, msg, _ := strings.Cut(rest, "]: ")
				where := fmt.Sprintf("text %d", first+i)
				if what == "line" {
					where += fmt.Sprintf(" (line %d)", first+i+1)
				}
				msg = strings.Replace(msg, "(allow truncation to cut it)", "(leave out --truncate=false to cut it)", 1)
				return &placedError{where: where, err: status.Error(st.Code(), msg)}
			}
		}
	}
	base := 0
	if what == "line" {
		base = 1
	}
	where := fmt.Sprintf("%s %d", what, first+base)
	if n > 1 {
		where = fmt.Sprintf("%ss %d-%d", what, first+base, first+base+n-1)
	}
	return &placedError{where: where, err: err}
}

// placedError is the error of a request that carried some of the inputs.
type placedError struct {
	where string
	err   error
}

func (p *placedError) Error() string { return p.where + ": " + p.err.Error() }
func (p *placedError) Unwrap() error { return p.err }

// appendVectorJSON appends {"index":i,"embedding":[...]} and a newline, with
// each component in the shortest form that reads back as the same float32.
func appendVectorJSON(b []byte, i int, v []float32) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"embedding":`...)
	b = ftoa.AppendArray(b, v)
	return append(b, "}\n"...)
}

func tokenizeCmd(e *env, args []string) int {
	fs := e.newFlagSet("tokenize", "tokenize [flags] [TEXT...]\n\nPrints the token ids the model reads for each text (arguments, or else lines of stdin),\none JSON line {\"ids\": [...]} per text, in order, with the model's special tokens.")
	model := fs.String("model", "", "model `id` (default: the server's default model)")
	truncate := fs.Bool("truncate", false, "cut each text to the model's max length")
	chunk := fs.Int("chunk", 256, "texts per request")
	texts, err := parseInterspersed(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if *chunk < 1 {
		return e.usageErr("tokenize", "--chunk %d is not ≥ 1", *chunk)
	}
	c, code := e.connect("tokenize")
	if c == nil {
		return code
	}
	defer c.Close()
	out := bufio.NewWriterSize(e.stdout, 1<<16)
	defer out.Flush()
	var readErr error
	chunks := lineChunks(e.stdin, *chunk, &readErr)
	what := "line"
	if len(texts) > 0 {
		chunks, what = argChunks(texts, *chunk), "text"
	}
	first := 0
	var line []byte
	for ch := range chunks {
		ids, err := c.Tokenize(e.ctx, ch, client.TokenizeOptions{Model: *model, Truncate: *truncate})
		if err != nil && (what == "line" || len(texts) > len(ch)) {
			err = textsErr(first, len(ch), what, err)
		}
		if err != nil {
			return e.fail("tokenize", err)
		}
		for _, t := range ids {
			line = append(line[:0], `{"ids":[`...)
			for j, id := range t {
				if j > 0 {
					line = append(line, ',')
				}
				line = strconv.AppendInt(line, int64(id), 10)
			}
			line = append(line, "]}\n"...)
			if _, err := out.Write(line); err != nil {
				return e.fail("tokenize", fmt.Errorf("writing output: %w", err))
			}
		}
		first += len(ch)
	}
	if readErr != nil {
		return e.fail("tokenize", readErr)
	}
	if first == 0 {
		return e.usageErr("tokenize", "no input: give texts as arguments or lines on stdin")
	}
	if err := out.Flush(); err != nil {
		return e.fail("tokenize", fmt.Errorf("writing output: %w", err))
	}
	return 0
}
