package index

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// npyMagic starts every .npy file: then a major and a minor version byte, the
// header length (u16 in version 1, u32 in versions 2 and 3, little-endian)
// and the header, a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 384), }
// padded with spaces and a newline; the data follows.
const npyMagic = "\x93NUMPY"

// NPYHeader is what a reader of a .npy file needs from its header.
type NPYHeader struct {
	Descr   string // the dtype, such as "<f4"
	Fortran bool   // fortran_order: column-major data
	Shape   []int
}

// ReadNPYHeader reads the header of a .npy file (format version 1, 2 or 3),
// leaving r at the data; it reads exactly the header's bytes. Its errors
// wrap ErrInvalid.
func ReadNPYHeader(r io.Reader) (NPYHeader, error) {
	var h NPYHeader
	pre := make([]byte, 8)
	if _, err := io.ReadFull(r, pre); err != nil {
		return h, invalidf("npy: reading the magic: %w", err)
	}
	if string(pre[:6]) != npyMagic {
		return h, invalidf("npy: not a .npy file (magic %q)", pre[:6])
	}
	var n int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return h, invalidf("npy: reading the header length: %w", err)
		}
		n = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return h, invalidf("npy: reading the header length: %w", err)
		}
		n = int(binary.LittleEndian.Uint32(b[:]))
		if n > 1<<20 {
			return h, invalidf("npy: header length %d is over 1 MiB", n)
		}
	default:
		return h, invalidf("npy: format version %d.%d is not 1, 2 or 3", pre[6], pre[7])
	}
	text := make([]byte, n)
	if _, err := io.ReadFull(r, text); err != nil {
		return h, invalidf("npy: reading the %d-byte header: %w", n, err)
	}
	return parseNPYDict(string(text))
}

// parseNPYDict parses the header's dict literal: string keys; values that
// are strings, True/False, or tuples of integers.
func parseNPYDict(s string) (NPYHeader, error) {
	var h NPYHeader
	p := &pyParser{s: strings.TrimRight(s, " \n\x00")}
	if !p.eat('{') {
		return h, invalidf("npy: header %q is not a dict", s)
	}
	seen := map[string]bool{}
	for {
		if p.eat('}') {
			break
		}
		key, ok := p.str()
		if !ok || !p.eat(':') {
			return h, invalidf("npy: header %q: expected 'key':", s)
		}
		seen[key] = true
		switch key {
		case "descr":
			if h.Descr, ok = p.str(); !ok {
				return h, invalidf("npy: header %q: descr is not a string", s)
			}
		case "fortran_order":
			switch {
			case p.word("True"):
				h.Fortran = true
			case p.word("False"):
				h.Fortran = false
			default:
				return h, invalidf("npy: header %q: fortran_order is not True or False", s)
			}
		case "shape":
			if h.Shape, ok = p.tuple(); !ok {
				return h, invalidf("npy: header %q: shape is not a tuple of integers", s)
			}
		default:
			return h, invalidf("npy: header %q: unknown key %q", s, key)
		}
		if !p.eat(',') {
			if !p.eat('}') {
				return h, invalidf("npy: header %q: expected , or }", s)
			}
			break
		}
	}
	if p.skip(); p.i != len(p.s) {
		return h, invalidf("npy: header %q: data after the dict", s)
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return h, invalidf("npy: header %q has no %s", s, k)
		}
	}
	return h, nil
}

// pyParser reads the small subset of Python literals .npy headers use.
type pyParser struct {
	s string
	i int
}

func (p *pyParser) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *pyParser) eat(c byte) bool {
	p.skip()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *pyParser) word(w string) bool {
	p.skip()
	if strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}

func (p *pyParser) str() (string, bool) {
	p.skip()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", false
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", false
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, true
}

func (p *pyParser) tuple() ([]int, bool) {
	if !p.eat('(') {
		return nil, false
	}
	var out []int
	for {
		if p.eat(')') {
			return out, true
		}
		p.skip()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(strings.TrimSuffix(p.s[p.i:j], "L"))
		if err != nil {
			return nil, false
		}
		p.i = j
		out = append(out, n)
		if !p.eat(',') {
			return out, p.eat(')')
		}
	}
}

// AppendNPYHeader appends a version 1.0 header for a C-order little-endian
// float32 matrix of rows×cols, padded so the data starts at a multiple of
// 64 bytes: 128 bytes for any rows and cols of up to 20 digits each.
func AppendNPYHeader(dst []byte, rows, cols int) []byte {
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols)
	total := len(npyMagic) + 4 + len(dict) + 1
	pad := (64 - total%64) % 64
	dst = append(dst, npyMagic...)
	dst = append(dst, 1, 0)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(dict)+pad+1))
	dst = append(dst, dict...)
	dst = append(dst, strings.Repeat(" ", pad)...)
	return append(dst, '\n')
}

// ImportNPY upserts the rows of a .npy file: a 2-D, C-order float32 array
// ('<f4' or '>f4') whose second dimension is the collection's. The ids are
// the row numbers ("0", "1", …) or, if ids is not nil, its lines, one per
// row. Rows are read and committed in batches, so memory stays flat. An
// error names the row or the ids line (wrapping ErrInvalid for bad input);
// the batches before the failing row's batch are stored (CheckNPY first
// makes an import all or nothing for bad input).
func (c *Collection) ImportNPY(ctx context.Context, r io.Reader, ids io.Reader) (int, error) {
	return c.importNPY(ctx, r, ids, newImporter(c, false))
}

// CheckNPY reads r and ids as ImportNPY does and checks every row against
// the collection without storing anything; it returns how many rows would
// be stored, or ImportNPY's error for the first bad row.
func (c *Collection) CheckNPY(ctx context.Context, r io.Reader, ids io.Reader) (int, error) {
	return c.importNPY(ctx, r, ids, newImporter(c, true))
}

func (c *Collection) importNPY(ctx context.Context, r io.Reader, ids io.Reader, imp *importer) (int, error) {
	if err := c.writable(); err != nil {
		return 0, err
	}
	br := bufio.NewReaderSize(r, 1<<20)
	h, err := ReadNPYHeader(br)
	if err != nil {
		return 0, err
	}
	var swap bool
	switch h.Descr {
	case "<f4":
	case ">f4":
		swap = true
	default:
		return 0, invalidf("npy: dtype %q is not float32 ('<f4')", h.Descr)
	}
	if h.Fortran {
		return 0, invalidf("npy: Fortran order is not supported; save the array in C order")
	}
	if len(h.Shape) != 2 {
		return 0, invalidf("npy: shape %v is not 2-D", h.Shape)
	}
	rows, dim := h.Shape[0], h.Shape[1]
	if dim != c.man.Dim {
		return 0, invalidf("npy: rows have %d dimensions, the collection %d", dim, c.man.Dim)
	}
	var idLines *bufio.Scanner
	if ids != nil {
		idLines = bufio.NewScanner(ids)
		idLines.Buffer(make([]byte, 0, 4096), 64<<10)
	}
	raw := make([]byte, 4*dim)
	vec := make([]float32, dim)
	for row := range rows {
		id := strconv.Itoa(row)
		if idLines != nil {
			if !idLines.Scan() {
				if err := idLines.Err(); err != nil {
					return imp.n, invalidf("npy ids line %d: %w", row+1, err)
				}
				return imp.n, invalidf("npy ids: %d lines for %d rows", row, rows)
			}
			id = strings.TrimSuffix(idLines.Text(), "\r")
			if err := validID(id, where{kind: "npy ids line", i: row + 1}); err != nil {
				return imp.n, err
			}
		}
		if _, err := io.ReadFull(br, raw); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return imp.n, invalidf("npy row %d: the data ends early (shape says %d rows)", row, rows)
			}
			return imp.n, fmt.Errorf("embedd/index: npy row %d: %w", row, err)
		}
		for j := range vec {
			b := raw[4*j : 4*j+4]
			if swap {
				vec[j] = math.Float32frombits(binary.BigEndian.Uint32(b))
			} else {
				vec[j] = float32FromLE(b)
			}
		}
		if err := imp.add(ctx, &Record{ID: id, Vector: vec}, where{kind: "npy row", i: row}); err != nil {
			return imp.n, err
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return imp.n, invalidf("npy: data after the %d rows the shape says", rows)
	}
	if idLines != nil && idLines.Scan() {
		return imp.n, invalidf("npy ids: more lines than the %d rows", rows)
	}
	return imp.n, imp.flush(ctx)
}
