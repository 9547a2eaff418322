package index

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/embedd/embedd/ftoa"
)

// Import batching and line limits.
const (
	importBatchRecords = 1024
	importBatchBytes   = 8 << 20
	maxJSONLLine       = 64 << 20
)

// jsonlRecord is one line of JSONL import and export:
//
//	{"id": "a", "vector": [0.1, 0.2], "metadata": {"lang": "en"}}
//
// metadata is a JSON object; metadata_bytes (base64) carries opaque
// metadata instead.
type jsonlRecord struct {
	ID            string          `json:"id"`
	Vector        []float32       `json:"vector"`
	Metadata      json.RawMessage `json:"metadata"`
	MetadataBytes []byte          `json:"metadata_bytes"`
}

// ImportJSONL upserts the records of r, one JSON object per line (blank
// lines are skipped), in batches of up to 1024 records, and returns how many
// it stored. Unknown fields are errors. An error names the line (wrapping
// ErrInvalid for bad input); the batches before the failing line's batch are
// stored, the rest is not (CheckJSONL first makes an import all or nothing
// for bad input). Memory stays flat whatever r's size.
func (c *Collection) ImportJSONL(ctx context.Context, r io.Reader) (int, error) {
	return c.importJSONL(ctx, r, newImporter(c, false))
}

// CheckJSONL reads r as ImportJSONL does and checks every record against
// the collection (its dimension, finite components, a direction under
// cosine, ids, metadata) without storing anything; it returns how many
// records would be stored, or ImportJSONL's error for the first bad line.
func (c *Collection) CheckJSONL(ctx context.Context, r io.Reader) (int, error) {
	return c.importJSONL(ctx, r, newImporter(c, true))
}

func (c *Collection) importJSONL(ctx context.Context, r io.Reader, imp *importer) (int, error) {
	if err := c.writable(); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxJSONLLine)
	var jr jsonlRecord
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		jr = jsonlRecord{Vector: jr.Vector[:0]}
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&jr); err != nil {
			return imp.n, invalidf("line %d: %w", line, err)
		}
		if dec.InputOffset() != int64(len(text)) {
			return imp.n, invalidf("line %d: data after the JSON object", line)
		}
		rec := Record{ID: jr.ID, Vector: jr.Vector}
		hasJSON := len(jr.Metadata) > 0 && string(jr.Metadata) != "null"
		switch {
		case hasJSON && jr.MetadataBytes != nil:
			return imp.n, invalidf("line %d: both metadata and metadata_bytes", line)
		case hasJSON:
			rec.Metadata, rec.MetadataJSON = jr.Metadata, true
		case jr.MetadataBytes != nil:
			rec.Metadata = jr.MetadataBytes
		}
		if err := imp.add(ctx, &rec, where{kind: "line", i: line}); err != nil {
			return imp.n, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return imp.n, invalidf("line %d: longer than %d bytes", line+1, maxJSONLLine)
		}
		return imp.n, fmt.Errorf("embedd/index: reading line %d: %w", line+1, err)
	}
	return imp.n, imp.flush(ctx)
}

// importer gathers validated records into batches and commits them; a dry
// importer only validates them and drops each batch.
type importer struct {
	c       *Collection
	b       *batch
	dry     bool
	pending int
	n       int
}

func newImporter(c *Collection, dry bool) *importer {
	return &importer{c: c, b: newBatch(importBatchBytes), dry: dry}
}

func (imp *importer) add(ctx context.Context, r *Record, w where) error {
	if err := imp.b.upsert(r, imp.c.man.Dim, imp.c.man.Metric, w); err != nil {
		return err
	}
	imp.pending++
	if imp.pending >= importBatchRecords || len(imp.b.buf) >= importBatchBytes {
		return imp.flush(ctx)
	}
	return nil
}

func (imp *importer) flush(ctx context.Context) error {
	if imp.pending == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedd/index: import: %w", err)
	}
	if !imp.dry {
		if _, err := imp.c.commit(ctx, imp.b); err != nil {
			return err
		}
	}
	imp.n += imp.pending
	imp.pending = 0
	// The committer is done with the buffer once the commit returned.
	imp.b.buf = imp.b.buf[:walRecordHeaderSize+walBatchHeaderSize]
	imp.b.nops = 0
	return nil
}

// ExportJSONL writes every live row of one snapshot to w as JSONL (the
// format ImportJSONL reads; floats as the shortest text that reads back to
// the same float32) in row order, and returns how many it wrote.
func (c *Collection) ExportJSONL(ctx context.Context, w io.Writer) (int, error) {
	s, err := c.Snapshot()
	if err != nil {
		return 0, err
	}
	defer s.Close()
	bw := bufio.NewWriterSize(w, 1<<20)
	var line []byte
	n := 0
	for row := range s.LiveRows() {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return n, fmt.Errorf("embedd/index: export: %w", err)
			}
		}
		line = append(line[:0], `{"id":`...)
		line = appendJSONString(line, s.ID(row))
		line = append(line, `,"vector":`...)
		line = ftoa.AppendArray(line, s.Row(row))
		if meta, isJSON := s.Metadata(row); isJSON {
			line = append(line, `,"metadata":`...)
			line = append(line, meta...)
		} else if meta != nil {
			line = append(line, `,"metadata_bytes":"`...)
			line = base64.StdEncoding.AppendEncode(line, meta)
			line = append(line, '"')
		}
		line = append(line, "}\n"...)
		if _, err := bw.Write(line); err != nil {
			return n, fmt.Errorf("embedd/index: export: %w", err)
		}
		n++
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("embedd/index: export: %w", err)
	}
	return n, nil
}

// appendJSONString appends s (valid UTF-8) as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		b := s[i]
		if b >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == '\u2028' || r == '\u2029' {
				dst = append(dst, `\u202`...)
				dst = append(dst, hex[r&0xf])
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case b == '"' || b == '\\':
			dst = append(dst, '\\', b)
		case b == '\n':
			dst = append(dst, '\\', 'n')
		case b == '\r':
			dst = append(dst, '\\', 'r')
		case b == '\t':
			dst = append(dst, '\\', 't')
		case b < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
		default:
			dst = append(dst, b)
		}
		i++
	}
	return append(dst, '"')
}

// float32FromLE decodes one little-endian float32.
func float32FromLE(b []byte) float32 {
	return math.Float32frombits(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
}
