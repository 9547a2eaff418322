package jobs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

// parquetRowGroup is the rows per row group the Parquet writer flushes:
// fixed, so row groups do not depend on how a job was sharded.
const parquetRowGroup = 8192

// parquetRow is one output row.
type parquetRow struct {
	ID        string    `parquet:"id"`
	Embedding []float32 `parquet:"embedding,list"`
}

// parquetWriter writes the Parquet output.
type parquetWriter struct {
	f    *atomicFile
	w    *parquet.GenericWriter[parquetRow]
	rows []parquetRow
}

func newParquetWriter(path string, stdout io.Writer) (*parquetWriter, error) {
	f, err := createAtomic(path, stdout)
	if err != nil {
		return nil, err
	}
	return &parquetWriter{f: f, w: parquet.NewGenericWriter[parquetRow](f)}, nil
}

func (w *parquetWriter) write(r *Result) error {
	for _, v := range r.Vectors {
		w.rows = append(w.rows, parquetRow{ID: r.ID, Embedding: v})
		if len(w.rows) == parquetRowGroup {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *parquetWriter) flush() error {
	if _, err := w.w.Write(w.rows); err != nil {
		return fmt.Errorf("embedd/jobs: writing Parquet: %w", err)
	}
	clear(w.rows)
	w.rows = w.rows[:0]
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("embedd/jobs: writing Parquet: %w", err)
	}
	return nil
}

func (w *parquetWriter) commit() error {
	err := w.flush()
	if err == nil {
		err = w.w.Close()
	}
	if err != nil {
		w.f.abort()
		return fmt.Errorf("embedd/jobs: writing Parquet: %w", err)
	}
	return w.f.commit()
}

func (w *parquetWriter) abort() { w.f.abort() }

// parquetSource reads one shard's run of row groups (the i-th of n even
// runs of the file's row groups).
type parquetSource struct {
	f                *os.File
	in               *Input
	groups           []parquet.RowGroup
	idCol, dataCol   int // leaf column indexes; -1: absent
	line, done, rows int64
	cur              parquet.Rows
	buf              []parquet.Row
	pos, n           int
}

func openParquet(f *os.File, in *Input, sh Shard) (*parquetSource, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: input: %w", err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: input is not Parquet: %w", err)
	}
	field := in.TextField
	if in.Vectors {
		field = in.VectorField
	}
	s := &parquetSource{f: f, in: in, idCol: leafOf(pf.Schema(), in.IDField), dataCol: leafOf(pf.Schema(), field), buf: make([]parquet.Row, 256)}
	if s.dataCol < 0 {
		return nil, fmt.Errorf("embedd/jobs: Parquet input has no column %q", field)
	}
	all := pf.RowGroups()
	lo, hi := len(all)*sh.Index/sh.Count, len(all)*(sh.Index+1)/sh.Count
	for _, g := range all[:lo] {
		s.line += g.NumRows()
	}
	s.groups = all[lo:hi]
	for _, g := range s.groups {
		s.rows += g.NumRows()
	}
	return s, nil
}

// leafOf is the index of the first leaf column under top-level field name,
// or -1.
func leafOf(s *parquet.Schema, name string) int {
	for i, path := range s.Columns() {
		if len(path) > 0 && path[0] == name {
			return i
		}
	}
	return -1
}

func (s *parquetSource) progress() (int64, int64) { return s.done, s.rows }

func (s *parquetSource) close() error {
	var err error
	if s.cur != nil {
		err = s.cur.Close()
	}
	return errors.Join(err, s.f.Close())
}

func (s *parquetSource) next(r *Record) (bool, error) {
	for s.pos == s.n {
		if s.cur == nil {
			if len(s.groups) == 0 {
				return false, nil
			}
			s.cur, s.groups = s.groups[0].Rows(), s.groups[1:]
		}
		n, err := s.cur.ReadRows(s.buf)
		s.pos, s.n = 0, n
		if err == io.EOF {
			err = s.cur.Close()
			s.cur = nil
		}
		if err != nil {
			return false, fmt.Errorf("embedd/jobs: reading Parquet: %w", err)
		}
	}
	row := s.buf[s.pos]
	s.pos++
	s.done++
	s.line++
	*r = Record{Line: s.line, ID: strconv.FormatInt(s.line, 10)}
	var text []byte
	var sawData bool
	for _, v := range row {
		if v.IsNull() {
			continue
		}
		if v.Column() == s.idCol {
			switch v.Kind() {
			case parquet.ByteArray, parquet.FixedLenByteArray:
				r.ID = string(v.ByteArray())
			default:
				r.ID = v.String()
			}
		}
		if v.Column() != s.dataCol {
			continue
		}
		sawData = true
		if !s.in.Vectors {
			text = v.ByteArray()
			continue
		}
		switch v.Kind() {
		case parquet.Float:
			r.Vector = append(r.Vector, v.Float())
		case parquet.Double:
			r.Vector = append(r.Vector, float32(v.Double()))
		default:
			r.Err = fmt.Sprintf("column %q is not a list of floats", s.in.VectorField)
		}
	}
	switch {
	case r.Err != "":
	case !sawData:
		r.Err = "missing value"
	case s.in.Vectors:
	case !utf8.Valid(text):
		r.Err = "text is not valid UTF-8"
	case len(text) == 0:
		r.Err = "empty text"
	default:
		r.Texts = []string{string(text)}
	}
	return true, nil
}
