// Package safetensors reads Hugging Face safetensors files: an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the tensors' bytes.
//
// Parse checks everything the format promises before any tensor is read:
// the header length is in range, every dtype is known, every byte range
// holds exactly shape's product of elements, the ranges tile the data area
// with no gap or overlap (as the reference implementation requires), and
// the file is not shorter than the header says (a truncated download).
// Matrix and Vector widen F32, F16 and BF16 tensors to float32, HalfMatrix
// keeps F16 as is, and Int64s reads the integer dtypes.
//
// # Why hand-written
//
// The format is a page long and embedd needs only reading. The one Go
// module found for it (github.com/nlpodyssey/safetensors) has no tagged
// release, only a pseudo-version, and its errors do not separate a wrong
// dtype from a wrong shape or a truncated file, which is what a user
// pointing embedd at a broken model folder needs to be told.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/embedd/embedd/vec"
)

// Errors wrapped by this package's errors, for errors.Is.
var (
	// ErrFormat: the bytes are not a well-formed safetensors file
	// (bad header length or JSON, byte ranges that do not fit the shapes or
	// that leave gaps).
	ErrFormat = errors.New("malformed safetensors file")
	// ErrTruncated: the file ends before the data its header describes.
	ErrTruncated = errors.New("truncated safetensors file")
	// ErrDType: a tensor's dtype is unknown, or is not one the caller can
	// read it as.
	ErrDType = errors.New("unsupported safetensors dtype")
	// ErrShape: a tensor's shape is not the one the caller needs.
	ErrShape = errors.New("unexpected tensor shape")
	// ErrMissing: the file has no tensor of the requested name.
	ErrMissing = errors.New("no such tensor")
)

// maxHeader bounds the JSON header, as the reference implementation does
// (100 MB), so a corrupt length cannot ask for a huge allocation.
const maxHeader = 100_000_000

// dtypeSizes are the element sizes of the dtypes the format defines.
var dtypeSizes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"U16": 2, "I16": 2, "F16": 2, "BF16": 2,
	"U32": 4, "I32": 4, "F32": 4,
	"U64": 8, "I64": 8, "F64": 8,
}

// Tensor is one tensor of a File; its bytes alias the File's.
type Tensor struct {
	Name  string
	DType string // as in the header: F32, F16, BF16, I64, ...
	Shape []int
	data  []byte
}

// File is a parsed safetensors file.
type File struct {
	// Metadata is the header's optional __metadata__ string map.
	Metadata map[string]string
	tensors  map[string]Tensor
	path     string // for error messages; "" when parsed from bytes
}

// ReadFile reads and parses the safetensors file at path.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("embedd/models: %w", err)
	}
	return parse(data, path)
}

// Parse parses the contents of a safetensors file. The File's tensors alias
// data.
func Parse(data []byte) (*File, error) { return parse(data, "") }

type entryJSON struct {
	DType       string `json:"dtype"`
	Shape       []int  `json:"shape"`
	DataOffsets []int  `json:"data_offsets"`
}

func parse(data []byte, path string) (*File, error) {
	f := &File{tensors: map[string]Tensor{}, path: path}
	if len(data) < 8 {
		return nil, f.errorf(ErrTruncated, "%d bytes, fewer than the 8 of the header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n < 2 || n > maxHeader {
		return nil, f.errorf(ErrFormat, "header length %d is not in [2, %d]", n, maxHeader)
	}
	if uint64(len(data)-8) < n {
		return nil, f.errorf(ErrTruncated, "header length is %d bytes but only %d follow", n, len(data)-8)
	}
	header, body := data[8:8+n], data[8+n:]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(header, &raw); err != nil {
		return nil, f.errorf(ErrFormat, "header is not a JSON object: %w", err)
	}
	type span struct {
		name       string
		start, end int
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, f.errorf(ErrFormat, "__metadata__ is not a map of strings: %w", err)
			}
			continue
		}
		var e entryJSON
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, f.errorf(ErrFormat, "tensor %q: %w", name, err)
		}
		size, ok := dtypeSizes[e.DType]
		if !ok {
			return nil, f.errorf(ErrDType, "tensor %q has dtype %q, not one safetensors defines", name, e.DType)
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] < 0 || e.DataOffsets[1] < e.DataOffsets[0] {
			return nil, f.errorf(ErrFormat, "tensor %q has data_offsets %v, want [start, end] with 0 <= start <= end", name, e.DataOffsets)
		}
		elems, ok := product(e.Shape)
		if !ok {
			return nil, f.errorf(ErrFormat, "tensor %q has shape %v, which has a negative or too large size", name, e.Shape)
		}
		start, end := e.DataOffsets[0], e.DataOffsets[1]
		if elems > math.MaxInt/size || end-start != elems*size {
			return nil, f.errorf(ErrFormat, "tensor %q: shape %v of %s needs %d bytes but data_offsets %v span %d", name, e.Shape, e.DType, elems*size, e.DataOffsets, end-start)
		}
		spans = append(spans, span{name, start, end})
		f.tensors[name] = Tensor{Name: name, DType: e.DType, Shape: e.Shape}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	pos := 0
	for _, s := range spans {
		if s.start != pos {
			return nil, f.errorf(ErrFormat, "tensor %q starts at byte %d of the data, want %d (the ranges must tile the data with no gap or overlap)", s.name, s.start, pos)
		}
		pos = s.end
	}
	if pos > len(body) {
		return nil, f.errorf(ErrTruncated, "the header describes %d bytes of tensor data but the file holds %d", pos, len(body))
	}
	if pos < len(body) {
		return nil, f.errorf(ErrFormat, "%d bytes follow the last tensor's data", len(body)-pos)
	}
	for _, s := range spans {
		t := f.tensors[s.name]
		t.data = body[s.start:s.end:s.end]
		f.tensors[s.name] = t
	}
	return f, nil
}

// product is the number of elements of shape; ok is false for a negative
// dimension or an overflow. The empty shape is a scalar: one element.
func product(shape []int) (n int, ok bool) {
	n = 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > math.MaxInt/d) {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// errorf builds an error naming the file, wrapping kind and any %w in format.
func (f *File) errorf(kind error, format string, args ...any) error {
	where := "safetensors data"
	if f.path != "" {
		where = f.path
	}
	return fmt.Errorf("embedd/models: %s: %w: %w", where, kind, fmt.Errorf(format, args...))
}

// Names returns the tensors' names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.tensors))
	for n := range f.tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Tensor returns the tensor called name, or an error wrapping ErrMissing
// that lists the names the file has.
func (f *File) Tensor(name string) (Tensor, error) {
	t, ok := f.tensors[name]
	if !ok {
		return Tensor{}, f.errorf(ErrMissing, "no tensor %q (it has %s)", name, strings.Join(f.Names(), ", "))
	}
	return t, nil
}

// Matrix returns the 2-D tensor called name widened to float32, row-major,
// with its rows and columns; the error wraps ErrMissing, ErrShape (not 2-D)
// or ErrDType (not F32, F16 or BF16).
func (f *File) Matrix(name string) (data []float32, rows, cols int, err error) {
	t, err := f.Tensor(name)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(t.Shape) != 2 {
		return nil, 0, 0, f.errorf(ErrShape, "tensor %q has shape %v, want [rows, columns]", name, t.Shape)
	}
	if data, err = f.float32s(t); err != nil {
		return nil, 0, 0, err
	}
	return data, t.Shape[0], t.Shape[1], nil
}

// HalfMatrix returns the 2-D F16 tensor called name as its IEEE half bit
// patterns, row-major, with its rows and columns, for callers that keep
// fp16 in memory (vec.AddHalf); the error wraps ErrMissing, ErrShape or
// ErrDType (another dtype: use Matrix).
func (f *File) HalfMatrix(name string) (data []uint16, rows, cols int, err error) {
	t, err := f.Tensor(name)
	if err != nil {
		return nil, 0, 0, err
	}
	if len(t.Shape) != 2 {
		return nil, 0, 0, f.errorf(ErrShape, "tensor %q has shape %v, want [rows, columns]", name, t.Shape)
	}
	if t.DType != "F16" {
		return nil, 0, 0, f.errorf(ErrDType, "tensor %q has dtype %s, want F16", name, t.DType)
	}
	data = make([]uint16, len(t.data)/2)
	for i := range data {
		data[i] = binary.LittleEndian.Uint16(t.data[2*i:])
	}
	return data, t.Shape[0], t.Shape[1], nil
}

// Vector returns the 1-D tensor called name widened to float32, checking
// that it has n elements (any number when n < 0).
func (f *File) Vector(name string, n int) ([]float32, error) {
	t, err := f.Tensor(name)
	if err != nil {
		return nil, err
	}
	if len(t.Shape) != 1 || (n >= 0 && t.Shape[0] != n) {
		return nil, f.errorf(ErrShape, "tensor %q has shape %v, want [%d]", name, t.Shape, n)
	}
	return f.float32s(t)
}

// Int64s returns the 1-D integer tensor called name (I8 to I64, U8 to U32)
// as int64s, checking that it has n elements (any number when n < 0).
func (f *File) Int64s(name string, n int) ([]int64, error) {
	t, err := f.Tensor(name)
	if err != nil {
		return nil, err
	}
	if len(t.Shape) != 1 || (n >= 0 && t.Shape[0] != n) {
		return nil, f.errorf(ErrShape, "tensor %q has shape %v, want [%d]", name, t.Shape, n)
	}
	switch t.DType {
	case "I8", "U8", "I16", "U16", "I32", "U32", "I64":
	default:
		return nil, f.errorf(ErrDType, "tensor %q has dtype %s, want an integer dtype (I8 to I64, U8 to U32)", name, t.DType)
	}
	d := t.data
	out := make([]int64, len(d)/dtypeSizes[t.DType])
	for i := range out {
		switch t.DType {
		case "I8":
			out[i] = int64(int8(d[i]))
		case "U8":
			out[i] = int64(d[i])
		case "I16":
			out[i] = int64(int16(binary.LittleEndian.Uint16(d[2*i:])))
		case "U16":
			out[i] = int64(binary.LittleEndian.Uint16(d[2*i:]))
		case "I32":
			out[i] = int64(int32(binary.LittleEndian.Uint32(d[4*i:])))
		case "U32":
			out[i] = int64(binary.LittleEndian.Uint32(d[4*i:]))
		default: // I64
			out[i] = int64(binary.LittleEndian.Uint64(d[8*i:]))
		}
	}
	return out, nil
}

// float32s widens t's elements to float32.
func (f *File) float32s(t Tensor) ([]float32, error) {
	d := t.data
	switch t.DType {
	case "F32":
		out := make([]float32, len(d)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
		return out, nil
	case "F16":
		out := make([]float32, len(d)/2)
		for i := range out {
			out[i] = vec.Half(binary.LittleEndian.Uint16(d[2*i:]))
		}
		return out, nil
	case "BF16":
		out := make([]float32, len(d)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(d[2*i:])) << 16)
		}
		return out, nil
	}
	return nil, f.errorf(ErrDType, "tensor %q has dtype %s, want F32, F16 or BF16", t.Name, t.DType)
}
