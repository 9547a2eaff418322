package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"unsafe"

	"github.com/embedd/embedd/vec"
)

// Mapping reservations: vectors get a large one so that growth almost never
// maps again; the small files a smaller one.
const (
	vectorsReserve = 1 << 30
	smallReserve   = 64 << 20
)

// matrix is the rows of one generation: vectors-<gen>.f32, row-major
// float32 after a 64-byte header, and for L2 collections norms-<gen>.f32,
// each row's squared norm.
type matrix struct {
	dim   int
	vecs  *mappedFile
	norms *mappedFile // nil unless the metric is L2
}

func vectorsPath(dir string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("vectors-%016x.f32", gen))
}

func normsPath(dir string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("norms-%016x.f32", gen))
}

// createMatrix creates the matrix files of generation gen with room for rows
// rows. The caller closes the result.
func createMatrix(dir string, gen uint64, dim int, l2 bool, rows int) (_ *matrix, err error) {
	m := &matrix{dim: dim}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	m.vecs, err = createMappedFile(vectorsPath(dir, gen), makeHeader(vectorsMagic, dim, gen),
		fileHeaderSize+int64(rows)*int64(dim)*4, vectorsReserve)
	if err != nil {
		return nil, err
	}
	if l2 {
		m.norms, err = createMappedFile(normsPath(dir, gen), makeHeader(normsMagic, 1, gen),
			fileHeaderSize+int64(rows)*4, smallReserve)
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// openMatrix maps the matrix files of generation gen and checks that they
// hold rows rows. private maps them for a read-only opener. The caller
// closes the result.
func openMatrix(dir string, gen uint64, dim int, l2 bool, rows int, private bool) (_ *matrix, err error) {
	if !littleEndian {
		return nil, errors.New("embedd/index: collections are little-endian float32; this host is big-endian")
	}
	m := &matrix{dim: dim}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	if m.vecs, err = openMappedFile(vectorsPath(dir, gen), private, vectorsReserve); err != nil {
		return nil, err
	}
	if err := checkHeader(m.vecs.bytes(), vectorsMagic, dim, gen, m.vecs.path); err != nil {
		return nil, err
	}
	if need := fileHeaderSize + int64(rows)*int64(dim)*4; m.vecs.size < need {
		return nil, corruptf("%s is %d bytes, too short for %d rows of dim %d", m.vecs.path, m.vecs.size, rows, dim)
	}
	if l2 {
		if m.norms, err = openMappedFile(normsPath(dir, gen), private, smallReserve); err != nil {
			return nil, err
		}
		if err := checkHeader(m.norms.bytes(), normsMagic, 1, gen, m.norms.path); err != nil {
			return nil, err
		}
		if need := fileHeaderSize + int64(rows)*4; m.norms.size < need {
			return nil, corruptf("%s is %d bytes, too short for %d rows", m.norms.path, m.norms.size, rows)
		}
	}
	return m, nil
}

// ensure makes room for rows rows. It changes nothing a snapshot holds.
func (m *matrix) ensure(rows int) error {
	if err := m.vecs.ensure(fileHeaderSize + int64(rows)*int64(m.dim)*4); err != nil {
		return err
	}
	if m.norms != nil {
		return m.norms.ensure(fileHeaderSize + int64(rows)*4)
	}
	return nil
}

// writeRow stores row (dim little-endian float32, as in the WAL) at index
// row, and its squared norm for L2. The caller ensured room.
func (m *matrix) writeRow(row int, v []byte) {
	off := fileHeaderSize + int64(row)*int64(m.dim)*4
	copy(m.vecs.mem[off:off+int64(m.dim)*4], v)
	if m.norms != nil {
		sum := vec.SquaredNorm(floats(m.vecs.mem[off:], m.dim))
		binary.LittleEndian.PutUint32(m.norms.mem[fileHeaderSize+int64(row)*4:], math.Float32bits(float32(sum)))
	}
}

// view returns the first rows rows as one row-major slice and, for L2, their
// squared norms, both straight from the mapping. Valid until close.
func (m *matrix) view(rows int) (data, norms []float32) {
	data = floats(m.vecs.mem[fileHeaderSize:], rows*m.dim)
	if m.norms != nil {
		norms = floats(m.norms.mem[fileHeaderSize:], rows)
	}
	return data, norms
}

// floats views the first n float32 of b (which the caller sized).
func floats(b []byte, n int) []float32 {
	if n == 0 {
		return []float32{}
	}
	_ = b[4*n-1]
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// sync makes the matrix files durable.
func (m *matrix) sync() error {
	err := m.vecs.sync()
	if m.norms != nil {
		err = errors.Join(err, m.norms.sync())
	}
	return err
}

// close unmaps and closes the files; nil-safe and idempotent.
func (m *matrix) close() error {
	if m == nil {
		return nil
	}
	return errors.Join(m.norms.close(), m.vecs.close())
}

// matrixFiles lists the matrix files of generation gen (norms may not exist).
func matrixFiles(dir string, gen uint64) []string {
	return []string{vectorsPath(dir, gen), normsPath(dir, gen)}
}
