package vec

import "golang.org/x/sys/cpu"

// The row kernels (rows_amd64.s) add rows[:nrows] of a row-major table
// (rows of dim elements) to dst[:dim], each element's sum in the order of
// rows; nrows > 0 and dim > 0. The AVX2 and F16C kernels hold 64 columns
// of dst in registers while they run down the rows, the AVX-512 ones 384;
// each fetches the next row's columns ahead (PREFETCHNTA).

//go:noescape
func addRowsAVX2(dst, table *float32, rows *int32, nrows, dim int)

//go:noescape
func addRowsAVX512(dst, table *float32, rows *int32, nrows, dim int)

//go:noescape
func addHalfRowsF16C(dst *float32, table *uint16, rows *int32, nrows, dim int)

//go:noescape
func addHalfRowsAVX512(dst *float32, table *uint16, rows *int32, nrows, dim int)

// rowKernels are the row kernels of one instruction set; nil fields fall
// back to the portable loops.
type rowKernels struct {
	name string
	add  func(dst, table *float32, rows *int32, nrows, dim int)
	half func(dst *float32, table *uint16, rows *int32, nrows, dim int)
}

// availableRowKernels lists the row kernels this CPU runs, best first; the
// last is the portable loops.
func availableRowKernels() []rowKernels {
	var ks []rowKernels
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX2 && hasF16C {
		ks = append(ks, rowKernels{"avx512", addRowsAVX512, addHalfRowsAVX512})
	}
	if hasAVX2 && hasF16C {
		ks = append(ks, rowKernels{"avx2", addRowsAVX2, addHalfRowsF16C})
	} else if hasAVX2 {
		ks = append(ks, rowKernels{"avx2", addRowsAVX2, nil})
	} else if hasF16C {
		ks = append(ks, rowKernels{"f16c", nil, addHalfRowsF16C})
	}
	return append(ks, rowKernels{name: "go"})
}

// rowKernel is the kernel AddRows and AddHalfRows use.
var rowKernel = availableRowKernels()[0]

// AddRows adds rows of a row-major table to dst, in the order of rows:
// dst[i] += table[r*len(dst)+i] for each r of rows. It panics if a row is
// outside the table. Each element's sum is taken in the order of rows, so
// the result has the bits that Add gives called once per row, but dst
// stays in registers while the rows stream past (with AVX-512, all of a
// 384-wide row at once) instead of being loaded and stored once per row:
// pooling a static embedding model is this loop over a text's token rows.
func AddRows(dst, table []float32, rows []int32) {
	checkRows(rows, len(table), len(dst))
	if len(dst) == 0 || len(rows) == 0 {
		return
	}
	if k := rowKernel.add; k != nil {
		k(&dst[0], &table[0], &rows[0], len(rows), len(dst))
		return
	}
	addRowsGo(dst, table, rows)
}

// AddHalfRows adds rows of a row-major table of IEEE halves to dst, in the
// order of rows: dst[i] += Half(table[r*len(dst)+i]) for each r of rows.
// It panics if a row is outside the table. As with AddRows, the bits are
// those of AddHalf called once per row; with F16C or AVX-512 it converts
// and adds many columns at a time down the rows, dst held in registers.
func AddHalfRows(dst []float32, table []uint16, rows []int32) {
	checkRows(rows, len(table), len(dst))
	if len(dst) == 0 || len(rows) == 0 {
		return
	}
	if k := rowKernel.half; k != nil {
		k(&dst[0], &table[0], &rows[0], len(rows), len(dst))
		return
	}
	addHalfRowsGo(dst, table, rows)
}
