package jobs

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/embedd/embedd/ftoa"
	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/openai"
)

// OutputFormat is how results are written.
type OutputFormat string

// The output formats. The zero value (OutputAuto) picks by the path: a
// ".npy" or ".parquet" name, else JSONL (neighbours for a search).
const (
	OutputAuto OutputFormat = ""
	// OutputJSONL writes {"id","embedding"} lines.
	OutputJSONL OutputFormat = "jsonl"
	// OutputNPY writes a float32 .npy of the vectors and their ids, one a
	// line, to IDsPath; it needs a file.
	OutputNPY OutputFormat = "npy"
	// OutputParquet writes columns id (string) and embedding (list of
	// float32), a row group per 8,192 rows.
	OutputParquet OutputFormat = "parquet"
	// OutputNeighbors writes {"id","neighbors":[{"id","score"}…]} lines.
	OutputNeighbors OutputFormat = "neighbors"
	// OutputOpenAI writes OpenAI Batch API output lines, and error lines
	// to the error file in the same shape.
	OutputOpenAI OutputFormat = "openai"
	// OutputPairs writes {"a","b","score"} lines, one per neighbour of a
	// Result (the threshold pairs).
	OutputPairs OutputFormat = "pairs"
	// OutputGroups writes {"keep","duplicates":[…]} lines: a Result's ID
	// and its neighbours' (dedup).
	OutputGroups OutputFormat = "groups"
)

// ParseOutputFormat reads "auto" or a format's name.
func ParseOutputFormat(s string) (OutputFormat, error) {
	switch f := OutputFormat(s); f {
	case "auto":
		return OutputAuto, nil
	case OutputJSONL, OutputNPY, OutputParquet, OutputNeighbors, OutputOpenAI:
		return f, nil
	}
	return "", fmt.Errorf("embedd/jobs: output format %q is not auto, jsonl, npy, parquet, neighbors or openai", s)
}

// Output is where a job's results go.
type Output struct {
	// Path is the output file, renamed into place when complete; "-" (or
	// "") writes Stdout as results come.
	Path   string
	Stdout io.Writer
	Format OutputFormat
	// IDsPath is the .npy output's ids file; default Path + ".ids".
	IDsPath string
	// ErrorsPath receives one JSON line per failed record, {"line","id",
	// "error"} (OpenAI's error lines for OutputOpenAI); "" writes them to
	// Stderr, or drops them when that is nil too.
	ErrorsPath string
	Stderr     io.Writer
	// Into, if set, receives the good results instead, in input order, in
	// batches of up to 256 (an upsert into a collection: embedd job embed
	// --into); Path and Format are then unused. A resumed job hands the
	// parts again, so Into must be idempotent (upserts by id are).
	Into func(results []Result) error
}

func (o *Output) defaults() {
	if o.Format == OutputAuto {
		switch {
		case strings.HasSuffix(o.Path, ".npy"):
			o.Format = OutputNPY
		case strings.HasSuffix(o.Path, ".parquet"):
			o.Format = OutputParquet
		default:
			o.Format = OutputJSONL
		}
	}
	if o.Format == OutputNPY && o.IDsPath == "" {
		o.IDsPath = o.Path + ".ids"
	}
}

// sink receives a job's results in input order: good ones go to the
// output, failed ones to the error file.
type sink struct {
	out     writer
	errs    *bufio.Writer
	errFile *atomicFile
	openai  bool
	line    []byte
	// bufs holds *[]byte buffers for encode's output, back from
	// writeEncoded: a part's JSON lines are megabytes.
	bufs sync.Pool
}

type writer interface {
	write(r *Result) error
	commit() error
	abort()
}

func (o *Output) open() (_ *sink, err error) {
	o.defaults()
	s := &sink{openai: o.Format == OutputOpenAI}
	switch {
	case o.Into != nil:
		s.out = &intoWriter{into: o.Into}
	case o.Format == OutputNPY:
		s.out, err = newNPYWriter(o.Path, o.IDsPath)
	case o.Format == OutputParquet:
		s.out, err = newParquetWriter(o.Path, o.Stdout)
	default:
		s.out, err = newLineWriter(o.Path, o.Stdout, o.Format)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case o.ErrorsPath != "":
		if s.errFile, err = createAtomic(o.ErrorsPath, nil); err != nil {
			s.out.abort()
			return nil, err
		}
		s.errs = bufio.NewWriterSize(s.errFile, 64<<10)
	case o.Stderr != nil:
		s.errs = bufio.NewWriter(o.Stderr)
	}
	return s, nil
}

func (s *sink) write(r *Result) error {
	if r.Err == "" {
		return s.out.write(r)
	}
	return s.writeErr(r)
}

// lines is a writer whose output can be made apart from writing it, so
// that the workers make it in parallel and the one goroutine that writes
// in order only writes.
type lines interface {
	writer
	appendLines(b []byte, r *Result) []byte
	writeLines(b []byte) error
}

// encode returns the output of res's successful results, or false when
// the sink's writer cannot make it ahead (it is not JSON lines).
func (s *sink) encode(res []Result) ([]byte, bool) {
	lw, ok := s.out.(lines)
	if !ok {
		return nil, false
	}
	b := s.buf()
	for i := range res {
		if res[i].Err == "" {
			b = lw.appendLines(b, &res[i])
		}
	}
	return b, true
}

// buf returns an empty buffer for encode, from bufs when one is there.
func (s *sink) buf() []byte {
	if p, ok := s.bufs.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return nil
}

// writeEncoded writes res, whose successful results encode made into
// out: out to the output, the failures to the error file.
func (s *sink) writeEncoded(res []Result, out []byte) error {
	for i := range res {
		if res[i].Err != "" {
			if err := s.writeErr(&res[i]); err != nil {
				return err
			}
		}
	}
	err := s.out.(lines).writeLines(out)
	s.bufs.Put(&out)
	return err
}

// writeErr writes failed r to the error file, if there is one.
func (s *sink) writeErr(r *Result) error {
	if s.errs == nil {
		return nil
	}
	if s.openai {
		s.line = appendOpenAIError(s.line[:0], r)
	} else {
		s.line = append(s.line[:0], `{"line":`...)
		s.line = strconv.AppendInt(s.line, r.Line, 10)
		s.line = append(s.line, `,"id":`...)
		s.line = appendJSONString(s.line, r.ID)
		s.line = append(s.line, `,"error":`...)
		s.line = appendJSONString(s.line, r.Err)
		s.line = append(s.line, "}\n"...)
	}
	_, err := s.errs.Write(s.line)
	return err
}

// commit completes the output and the error file.
func (s *sink) commit() error {
	if err := s.out.commit(); err != nil {
		s.abortErrs()
		return err
	}
	if s.errs == nil {
		return nil
	}
	if err := s.errs.Flush(); err != nil {
		s.abortErrs()
		return fmt.Errorf("embedd/jobs: writing the error file: %w", err)
	}
	if s.errFile != nil {
		return s.errFile.commit()
	}
	return nil
}

func (s *sink) abortErrs() {
	if s.errFile != nil {
		s.errFile.abort()
	} else if s.errs != nil {
		s.errs.Flush()
	}
}

// abort leaves no partial files behind (what went to stdout stays).
func (s *sink) abort() {
	s.out.abort()
	s.abortErrs()
}

// intoWriter hands results to Output.Into in batches.
type intoWriter struct {
	into func([]Result) error
	buf  []Result
}

func (w *intoWriter) write(r *Result) error {
	w.buf = append(w.buf, *r)
	if len(w.buf) == 256 {
		return w.flush()
	}
	return nil
}

func (w *intoWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.into(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *intoWriter) commit() error { return w.flush() }
func (w *intoWriter) abort()        { w.buf = nil }

// lineWriter writes JSON lines: embeddings, neighbours or OpenAI output.
type lineWriter struct {
	f      *atomicFile
	w      *bufio.Writer
	format OutputFormat
	line   []byte
}

func newLineWriter(path string, stdout io.Writer, format OutputFormat) (*lineWriter, error) {
	f, err := createAtomic(path, stdout)
	if err != nil {
		return nil, err
	}
	return &lineWriter{f: f, w: bufio.NewWriterSize(f, 1<<20), format: format}, nil
}

func (w *lineWriter) write(r *Result) error {
	w.line = w.appendLines(w.line[:0], r)
	return w.writeLines(w.line)
}

func (w *lineWriter) writeLines(b []byte) error {
	_, err := w.w.Write(b)
	return err
}

// appendLines appends r's output lines to b.
func (w *lineWriter) appendLines(b []byte, r *Result) []byte {
	switch w.format {
	case OutputNeighbors:
		b = append(b, `{"id":`...)
		b = appendJSONString(b, r.ID)
		b = append(b, `,"neighbors":[`...)
		for i, n := range r.Neighbors {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = appendJSONString(b, n.ID)
			b = append(b, `,"score":`...)
			b = ftoa.Append(b, n.Score)
			b = append(b, '}')
		}
		b = append(b, "]}\n"...)
	case OutputOpenAI:
		b = appendOpenAIOutput(b, r)
	case OutputPairs:
		for _, n := range r.Neighbors {
			b = append(b, `{"a":`...)
			b = appendJSONString(b, r.ID)
			b = append(b, `,"b":`...)
			b = appendJSONString(b, n.ID)
			b = append(b, `,"score":`...)
			b = ftoa.Append(b, n.Score)
			b = append(b, "}\n"...)
		}
	case OutputGroups:
		b = append(b, `{"keep":`...)
		b = appendJSONString(b, r.ID)
		b = append(b, `,"duplicates":[`...)
		for i, n := range r.Neighbors {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, n.ID)
		}
		b = append(b, "]}\n"...)
	default:
		for _, v := range r.Vectors {
			b = append(b, `{"id":`...)
			b = appendJSONString(b, r.ID)
			b = append(b, `,"embedding":`...)
			b = ftoa.AppendArray(b, v)
			b = append(b, "}\n"...)
		}
	}
	return b
}

func (w *lineWriter) commit() error {
	if err := w.w.Flush(); err != nil {
		w.f.abort()
		return fmt.Errorf("embedd/jobs: writing output: %w", err)
	}
	return w.f.commit()
}

func (w *lineWriter) abort() {
	w.w.Flush()
	w.f.abort()
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// appendOpenAIOutput writes an OpenAI Batch API output line for r; ids
// derive from the line number, so reruns write the same bytes.
func appendOpenAIOutput(b []byte, r *Result) []byte {
	b = appendOpenAIHead(b, r, 200)
	b = openai.AppendEmbeddings(b, r.Vectors, r.Model, r.Tokens, r.Base64)
	return append(b, "},\"error\":null}\n"...)
}

func appendOpenAIError(b []byte, r *Result) []byte {
	b = appendOpenAIHead(b, r, 400)
	b = append(b, `{"error":{"message":`...)
	b = appendJSONString(b, fmt.Sprintf("line %d: %s", r.Line, r.Err))
	return append(b, `,"type":"invalid_request_error","param":null,"code":null}}},"error":null}`+"\n"...)
}

func appendOpenAIHead(b []byte, r *Result, status int) []byte {
	b = append(b, `{"id":"batch_req_`...)
	b = strconv.AppendInt(b, r.Line, 10)
	b = append(b, `","custom_id":`...)
	b = appendJSONString(b, r.ID)
	b = append(b, `,"response":{"status_code":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"request_id":"req_`...)
	b = strconv.AppendInt(b, r.Line, 10)
	return append(b, `","body":`...)
}

// npyWriter writes a .npy of float32 rows and an ids file. The header is
// written with room for any shape and rewritten with the real one at the
// end, so the file needs a path, not stdout.
type npyWriter struct {
	f, ids *atomicFile
	w, iw  *bufio.Writer
	dim    int
	rows   int64
	raw    []byte
}

func newNPYWriter(path, idsPath string) (*npyWriter, error) {
	if path == "-" || path == "" {
		return nil, errors.New("embedd/jobs: .npy output needs a file, not stdout")
	}
	f, err := createAtomic(path, nil)
	if err != nil {
		return nil, err
	}
	ids, err := createAtomic(idsPath, nil)
	if err != nil {
		f.abort()
		return nil, err
	}
	w := &npyWriter{f: f, ids: ids, w: bufio.NewWriterSize(f, 1<<20), iw: bufio.NewWriterSize(ids, 64<<10)}
	_, err = w.w.Write(npyHeader(0, 0))
	return w, err
}

// npyHeader is the output's header: index.AppendNPYHeader is 128 bytes for
// any shape, so the real one rewrites the placeholder in place.
func npyHeader(rows int64, dim int) []byte {
	return index.AppendNPYHeader(nil, int(rows), dim)
}

func (w *npyWriter) write(r *Result) error {
	for _, v := range r.Vectors {
		if w.dim == 0 {
			w.dim = len(v)
		} else if len(v) != w.dim {
			return fmt.Errorf("embedd/jobs: line %d: %d dimensions, earlier rows %d: .npy needs one width", r.Line, len(v), w.dim)
		}
		w.raw = w.raw[:0]
		for _, x := range v {
			w.raw = binary.LittleEndian.AppendUint32(w.raw, math.Float32bits(x))
		}
		if _, err := w.w.Write(w.raw); err != nil {
			return err
		}
		w.iw.WriteString(r.ID)
		if err := w.iw.WriteByte('\n'); err != nil {
			return err
		}
		w.rows++
	}
	return nil
}

func (w *npyWriter) commit() error {
	err := w.w.Flush()
	if err == nil {
		_, err = w.f.file().WriteAt(npyHeader(w.rows, w.dim), 0)
	}
	if err == nil {
		err = w.iw.Flush()
	}
	if err != nil {
		w.abort()
		return fmt.Errorf("embedd/jobs: writing output: %w", err)
	}
	if err := w.f.commit(); err != nil {
		w.ids.abort()
		return err
	}
	return w.ids.commit()
}

func (w *npyWriter) abort() {
	w.f.abort()
	w.ids.abort()
}
