package vec

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/cpu"
)

// rowsCases are the widths and row lists TestAddRows and TestAddHalfRows
// run: widths that reach each of the kernels' steps (64 columns, 8, one),
// and rows with repeats, in no order.
func rowsCases() (dims []int, rows [][]int32) {
	dims = []int{1, 7, 8, 9, 63, 64, 65, 72, 100, 128, 257, 383, 384, 385, 456, 768, 1000}
	rows = [][]int32{{0}, {3}, {2, 2}, {5, 0, 5, 1, 4, 4, 4, 2, 0, 3}, {1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0}}
	return dims, rows
}

// eachRowKernel runs f with every row kernel this CPU has (AVX-512, AVX2
// and F16C, the portable loops) in use in turn.
func eachRowKernel(t *testing.T, f func(t *testing.T)) {
	saved := rowKernel
	defer func() { rowKernel = saved }()
	for _, k := range availableRowKernels() {
		rowKernel = k
		t.Run(k.name, f)
	}
}

// TestRowKernels: the kernels tried include the portable loops and, on
// amd64 with AVX2, an assembly one.
func TestRowKernels(t *testing.T) {
	ks := availableRowKernels()
	if ks[len(ks)-1].name != "go" {
		t.Fatalf("last row kernel is %q, want the portable loops", ks[len(ks)-1].name)
	}
	if runtime.GOARCH == "amd64" && cpu.X86.HasAVX2 && len(ks) < 2 {
		t.Fatal("no assembly row kernel on amd64 with AVX2")
	}
	t.Logf("row kernels: %v", ks)
}

// TestAddRows checks AddRows, with each kernel, against the portable loop
// and against Add once per row, bit for bit, for float32 sums that round
// differently in another order.
func TestAddRows(t *testing.T) { eachRowKernel(t, testAddRows) }

func testAddRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	checkRowSums(t, "AddRows", func(d int) []float32 {
		table := make([]float32, 8*d)
		for i := range table {
			table[i] = float32(rng.NormFloat64()) * float32(math.Pow(10, float64(rng.IntN(9)-4)))
		}
		return table
	}, Add, addRowsGo, AddRows)
}

// TestAddHalfRows is TestAddRows for a table of halves.
func TestAddHalfRows(t *testing.T) { eachRowKernel(t, testAddHalfRows) }

func testAddHalfRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	checkRowSums(t, "AddHalfRows", func(d int) []uint16 {
		table := make([]uint16, 8*d)
		for i := range table {
			h := uint16(rng.Uint32())
			if h>>10&0x1f == 0x1f { // no Inf or NaN
				h &^= 0x4000
			}
			table[i] = h
		}
		return table
	}, AddHalf, addHalfRowsGo, AddHalfRows)
}

// checkRowSums checks, for every case of rowsCases over a table of 8 rows
// that table(d) makes, that the kernel (fast) and the portable loop (port)
// sum the rows into dst bit for bit as one add per row does.
func checkRowSums[T float32 | uint16](t *testing.T, name string, table func(d int) []T, add func(dst []float32, row []T), port, fast func(dst []float32, table []T, rows []int32)) {
	t.Helper()
	dims, lists := rowsCases()
	for _, d := range dims {
		tab := table(d)
		for _, rows := range lists {
			dst := make([]float32, d)
			for i := range dst {
				dst[i] = float32(i%5) - 2.5
			}
			want, portable := slices.Clone(dst), slices.Clone(dst)
			for _, r := range rows {
				add(want, tab[int(r)*d:])
			}
			port(portable, tab, rows)
			fast(dst, tab, rows)
			if !slices.Equal(dst, want) || !slices.Equal(portable, want) {
				t.Fatalf("dim %d, rows %v: %s = %v, portable %v, want %v", d, rows, name, dst, portable, want)
			}
		}
	}
}

// TestAddRowsEmpty: no rows or no columns leave dst as it is.
func TestAddRowsEmpty(t *testing.T) { eachRowKernel(t, testAddRowsEmpty) }

func testAddRowsEmpty(t *testing.T) {
	dst := []float32{1, 2}
	AddRows(dst, []float32{5, 6}, nil)
	AddHalfRows(dst, []uint16{0x3c00, 0x3c00}, nil)
	AddRows(nil, nil, []int32{0, 0})
	AddHalfRows(nil, nil, []int32{0})
	if !slices.Equal(dst, []float32{1, 2}) {
		t.Fatalf("dst = %v, want [1 2]", dst)
	}
}

// TestAddRowsOutOfRange: a row outside the table panics rather than
// reading past it.
func TestAddRowsOutOfRange(t *testing.T) {
	for _, rows := range [][]int32{{2}, {-1}, {0, 1, 2}} {
		for name, f := range map[string]func(){
			"AddRows":     func() { AddRows(make([]float32, 3), make([]float32, 7), rows) },
			"AddHalfRows": func() { AddHalfRows(make([]float32, 3), make([]uint16, 7), rows) },
		} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s with rows %v of a 2-row table did not panic", name, rows)
					}
				}()
				f()
			}()
		}
	}
}
