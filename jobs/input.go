package jobs

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/embedd/embedd/openai"
)

// InputFormat is how an input file is read.
type InputFormat string

// The input formats. The zero value (InputAuto) decides by the file: a
// ".parquet" name or Parquet's magic is Parquet; otherwise the first line
// decides: a JSON object with "custom_id" and "body" is an OpenAI Batch API
// request file, another JSON object JSONL, anything else text lines.
const (
	InputAuto    InputFormat = ""
	InputText    InputFormat = "text"
	InputJSONL   InputFormat = "jsonl"
	InputOpenAI  InputFormat = "openai"
	InputParquet InputFormat = "parquet"
)

// ParseInputFormat reads "auto", "text", "jsonl", "openai" or "parquet".
func ParseInputFormat(s string) (InputFormat, error) {
	switch f := InputFormat(s); f {
	case "auto":
		return InputAuto, nil
	case InputText, InputJSONL, InputOpenAI, InputParquet:
		return f, nil
	}
	return "", fmt.Errorf("embedd/jobs: input format %q is not auto, text, jsonl, openai or parquet", s)
}

// Input is where a job's records come from.
type Input struct {
	// Path is the file; "-" reads Stdin (no shards, no resume).
	Path  string
	Stdin io.Reader
	// Format is how to read it; InputAuto detects it.
	Format InputFormat
	// IDField, TextField and VectorField name the JSONL fields (Parquet
	// columns); defaults "id", "text", "vector".
	IDField, TextField, VectorField string
	// Vectors reads VectorField as the record (JSONL, Parquet) instead of
	// TextField.
	Vectors bool
	// MaxLineBytes bounds a line; a longer one is a failed record. Default
	// 16 MiB.
	MaxLineBytes int
}

func (in *Input) defaults() {
	if in.IDField == "" {
		in.IDField = "id"
	}
	if in.TextField == "" {
		in.TextField = "text"
	}
	if in.VectorField == "" {
		in.VectorField = "vector"
	}
	if in.MaxLineBytes == 0 {
		in.MaxLineBytes = 16 << 20
	}
}

// identity is what the manifest keeps to recognise the input: its path,
// size and the SHA-256 of its first and last MiB.
type identity struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Head string `json:"head_sha256"`
	Tail string `json:"tail_sha256"`
}

func identify(path string) (identity, error) {
	id := identity{Path: path}
	f, err := os.Open(path)
	if err != nil {
		return id, fmt.Errorf("embedd/jobs: input: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return id, fmt.Errorf("embedd/jobs: input: %w", err)
	}
	id.Size = st.Size()
	hash := func(off int64) (string, error) {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, off, 1<<20)); err != nil {
			return "", fmt.Errorf("embedd/jobs: input: %w", err)
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	if id.Head, err = hash(0); err != nil {
		return id, err
	}
	id.Tail, err = hash(max(0, id.Size-1<<20))
	return id, err
}

// source yields one shard's records in order.
type source interface {
	// next fills r with the next record; false at the end. An error is
	// the input failing (unreadable), not a bad record.
	next(r *Record) (bool, error)
	// progress is how far the source is, of total (bytes or rows).
	progress() (done, total int64)
	close() error
}

// open opens shard sh of in.
func (in *Input) open(sh Shard) (source, error) {
	in.defaults()
	format := in.Format
	if in.Path == "-" {
		br := bufio.NewReaderSize(in.Stdin, 1<<20)
		if format == InputAuto {
			format = sniffLine(peekLine(br))
		}
		if format == InputParquet {
			return nil, errors.New("embedd/jobs: Parquet cannot be read from stdin; give a file")
		}
		return &lineSource{in: in, format: format, r: br, line: 0, total: 0}, nil
	}
	f, err := os.Open(in.Path)
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: input: %w", err)
	}
	if format == InputAuto {
		if format, err = sniffFile(f, in.Path); err != nil {
			f.Close()
			return nil, err
		}
	}
	if format == InputParquet {
		s, err := openParquet(f, in, sh)
		if err != nil {
			f.Close()
		}
		return s, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("embedd/jobs: input: %w", err)
	}
	start, end, lines, err := shardRange(f, st.Size(), sh)
	if err != nil {
		f.Close()
		return nil, err
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, start, end-start), 1<<20)
	return &lineSource{in: in, format: format, r: r, f: f, line: lines, total: end - start}, nil
}

// DetectInput says which format InputAuto reads the file at path as.
func DetectInput(path string) (InputFormat, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("embedd/jobs: input: %w", err)
	}
	defer f.Close()
	return sniffFile(f, path)
}

func sniffFile(f *os.File, path string) (InputFormat, error) {
	if strings.HasSuffix(path, ".parquet") {
		return InputParquet, nil
	}
	head := make([]byte, 64<<10)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("embedd/jobs: input: %w", err)
	}
	head = head[:n]
	if bytes.HasPrefix(head, []byte("PAR1")) {
		return InputParquet, nil
	}
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	return sniffLine(head), nil
}

func peekLine(br *bufio.Reader) []byte {
	b, _ := br.Peek(64 << 10)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return b
}

func sniffLine(line []byte) InputFormat {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return InputText
	}
	var probe struct {
		CustomID *string         `json:"custom_id"`
		Body     json.RawMessage `json:"body"`
	}
	if json.Unmarshal(line, &probe) == nil && probe.CustomID != nil && probe.Body != nil {
		return InputOpenAI
	}
	return InputJSONL
}

// shardRange returns shard sh's newline-aligned byte range of a file of
// size bytes and the number of lines before it.
func shardRange(f *os.File, size int64, sh Shard) (start, end, lines int64, err error) {
	align := func(x int64) (int64, error) {
		if x <= 0 || x >= size {
			return min(max(x, 0), size), nil
		}
		// The line holding byte x-1 ends at the first newline at or after it.
		r := bufio.NewReaderSize(io.NewSectionReader(f, x-1, size-x+1), 64<<10)
		n := x - 1
		for {
			b, err := r.ReadSlice('\n')
			n += int64(len(b))
			switch {
			case err == nil:
				return n, nil
			case err == io.EOF:
				return size, nil
			case !errors.Is(err, bufio.ErrBufferFull):
				return 0, fmt.Errorf("embedd/jobs: input: %w", err)
			}
		}
	}
	if start, err = align(size * int64(sh.Index) / int64(sh.Count)); err != nil {
		return
	}
	if end, err = align(size * int64(sh.Index+1) / int64(sh.Count)); err != nil {
		return
	}
	buf := make([]byte, 1<<20)
	sr := io.NewSectionReader(f, 0, start)
	for {
		n, rerr := sr.Read(buf)
		lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
		if rerr == io.EOF {
			return start, end, lines, nil
		}
		if rerr != nil {
			return 0, 0, 0, fmt.Errorf("embedd/jobs: input: %w", rerr)
		}
	}
}

// lineSource reads text, JSONL or OpenAI lines.
type lineSource struct {
	in     *Input
	format InputFormat
	r      *bufio.Reader
	f      *os.File // nil for stdin
	line   int64    // lines read, counting the ones before the shard
	done   int64    // bytes read
	total  int64
	buf    []byte
}

func (s *lineSource) progress() (int64, int64) { return s.done, s.total }

func (s *lineSource) close() error {
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

// readLine reads one line without its newline (and a '\r' before it);
// over is set when it was longer than the limit (its bytes are dropped).
func (s *lineSource) readLine() (line []byte, over, ok bool, err error) {
	s.buf = s.buf[:0]
	for {
		b, rerr := s.r.ReadSlice('\n')
		s.done += int64(len(b))
		if !over {
			if len(s.buf)+len(b) > s.in.MaxLineBytes+1 {
				over, s.buf = true, s.buf[:0]
			} else {
				s.buf = append(s.buf, b...)
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, bufio.ErrBufferFull):
			continue
		case rerr == io.EOF:
			if len(s.buf) == 0 && !over && len(b) == 0 {
				return nil, false, false, nil
			}
		default:
			return nil, false, false, fmt.Errorf("embedd/jobs: reading input: %w", rerr)
		}
		break
	}
	line = bytes.TrimSuffix(s.buf, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, over, true, nil
}

func (s *lineSource) next(r *Record) (bool, error) {
	line, over, ok, err := s.readLine()
	if !ok || err != nil {
		return false, err
	}
	s.line++
	*r = Record{Line: s.line, ID: strconv.FormatInt(s.line, 10)}
	switch {
	case over:
		r.Err = fmt.Sprintf("line is over %d bytes", s.in.MaxLineBytes)
	case !utf8.Valid(line):
		r.Err = "line is not valid UTF-8"
	case s.format == InputText:
		if len(line) == 0 {
			r.Err = "empty text"
		} else {
			r.Texts = []string{string(line)}
		}
	case s.format == InputOpenAI:
		parseOpenAI(line, r)
	default:
		parseJSONL(line, s.in, r)
	}
	return true, nil
}

// parseJSONL reads one JSONL object into r, or sets r.Err.
func parseJSONL(line []byte, in *Input, r *Record) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		r.Err = "not a JSON object: " + err.Error()
		return
	}
	if raw, ok := obj[in.IDField]; ok {
		id, err := jsonID(raw)
		if err != nil {
			r.Err = fmt.Sprintf("field %q: %v", in.IDField, err)
			return
		}
		r.ID = id
	}
	if in.Vectors {
		raw, ok := obj[in.VectorField]
		if !ok {
			r.Err = fmt.Sprintf("no %q field", in.VectorField)
			return
		}
		if err := json.Unmarshal(raw, &r.Vector); err != nil || len(r.Vector) == 0 {
			r.Err = fmt.Sprintf("field %q is not a non-empty list of numbers", in.VectorField)
		}
		return
	}
	raw, ok := obj[in.TextField]
	if !ok {
		r.Err = fmt.Sprintf("no %q field", in.TextField)
		return
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		r.Err = fmt.Sprintf("field %q is not a string", in.TextField)
		return
	}
	if text == "" {
		r.Err = "empty text"
		return
	}
	r.Texts = []string{text}
}

// jsonID is a string id, or a number's literal.
func jsonID(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return "", errors.New("empty id")
		}
		return s, nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), nil
	}
	return "", errors.New("not a string or a number")
}

// openAIRequest is one line of an OpenAI Batch API input file.
type openAIRequest struct {
	CustomID string `json:"custom_id"`
	Method   string `json:"method"`
	URL      string `json:"url"`
	Body     struct {
		Model      string          `json:"model"`
		Input      json.RawMessage `json:"input"`
		Dimensions int             `json:"dimensions"`
		Format     string          `json:"encoding_format"`
	} `json:"body"`
}

// parseOpenAI reads one OpenAI Batch API request line into r.
func parseOpenAI(line []byte, r *Record) {
	var req openAIRequest
	if err := json.Unmarshal(line, &req); err != nil {
		r.Err = "not an OpenAI batch request: " + err.Error()
		return
	}
	if req.CustomID != "" {
		r.ID = req.CustomID
	}
	b64, formatErr := openai.Base64(req.Body.Format)
	switch {
	case req.CustomID == "":
		r.Err = "no custom_id"
	case req.Method != "POST":
		r.Err = fmt.Sprintf("method %q: only POST is supported", req.Method)
	case req.URL != "/v1/embeddings":
		r.Err = fmt.Sprintf("url %q: only /v1/embeddings is supported", req.URL)
	case formatErr != nil:
		r.Err = formatErr.Error()
	case req.Body.Dimensions < 0:
		r.Err = fmt.Sprintf("dimensions %d is negative", req.Body.Dimensions)
	}
	if r.Err != "" {
		return
	}
	r.Model, r.Dimensions, r.Base64 = req.Body.Model, req.Body.Dimensions, b64
	var one string
	if err := json.Unmarshal(req.Body.Input, &one); err == nil {
		r.Texts = []string{one}
	} else if err := json.Unmarshal(req.Body.Input, &r.Texts); err != nil {
		r.Err = "body.input is not a string or a list of strings"
		return
	}
	if len(r.Texts) == 0 {
		r.Err = "body.input is empty"
	}
	for _, t := range r.Texts {
		if t == "" {
			r.Err = "empty text in body.input"
		}
	}
}
