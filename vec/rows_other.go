//go:build !amd64

package vec

// rowKernels names the row kernels in use; on this architecture there are
// only the portable loops.
type rowKernels struct{ name string }

// availableRowKernels lists the row kernels this CPU runs: the portable
// loops.
func availableRowKernels() []rowKernels { return []rowKernels{{name: "go"}} }

// rowKernel is the kernel AddRows and AddHalfRows use.
var rowKernel = availableRowKernels()[0]

// AddRows adds rows of a row-major table to dst, in the order of rows:
// dst[i] += table[r*len(dst)+i] for each r of rows. It panics if a row is
// outside the table.
func AddRows(dst, table []float32, rows []int32) {
	checkRows(rows, len(table), len(dst))
	addRowsGo(dst, table, rows)
}

// AddHalfRows adds rows of a row-major table of IEEE halves to dst, in the
// order of rows: dst[i] += Half(table[r*len(dst)+i]) for each r of rows.
// It panics if a row is outside the table.
func AddHalfRows(dst []float32, table []uint16, rows []int32) {
	checkRows(rows, len(table), len(dst))
	addHalfRowsGo(dst, table, rows)
}
