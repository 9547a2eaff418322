package flat

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"unsafe"
)

var benchMatrices = map[int]Matrix{}

// benchMatrix returns n random unit rows of dimension 384, made once per n.
func benchMatrix(n int) Matrix {
	if m, ok := benchMatrices[n]; ok {
		return m
	}
	const dim = 384
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	data := make([]float32, n*dim)
	for i := range data {
		data[i] = 2*rng.Float32() - 1
	}
	for i := range n {
		normalize(data[i*dim : (i+1)*dim])
	}
	m := withNorms(data, dim)
	benchMatrices[n] = m
	return m
}

// BenchmarkSearch is the cosine top-10 search of Q queries over n×384
// unit rows, on every kernel this CPU has. For Q=1 the MB/s column is the
// matrix scan rate.
func BenchmarkSearch(b *testing.B) {
	defer func(k kernel) { active = k }(active)
	for _, n := range []int{100_000, 1_000_000} {
		for _, nq := range []int{1, 16, 1024} {
			for _, k := range kernels {
				if k.name == "go" && nq == 1024 {
					continue // minutes per operation
				}
				b.Run(fmt.Sprintf("n=%d/Q=%d/%s", n, nq, k.name), func(b *testing.B) {
					m := benchMatrix(n)
					queries := randVecs(rand.New(rand.NewPCG(2, 3)), nq, m.Dim)
					active = k
					if nq == 1 {
						b.SetBytes(int64(len(m.Data) * 4))
					}
					b.ResetTimer()
					for b.Loop() {
						if _, err := Search(context.Background(), m, queries, 10, Options{Metric: Cosine}); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(nq*b.N)/b.Elapsed().Seconds(), "queries/s")
				})
			}
		}
	}
}

// BenchmarkMemoryBandwidth is the rate at which GOMAXPROCS goroutines read
// a 2 GiB buffer, the most the Q=1 scan can reach. "sum" is portable Go:
// integer sums over four streams per goroutine (on the development machine
// it is limited by its scalar loads, not by memory). "<kernel>" streams the
// buffer through the kernel's dot1 with no top-k: the best read this
// package's instructions achieve.
func BenchmarkMemoryBandwidth(b *testing.B) {
	const size = 2 << 30
	buf := make([]float32, size/4)
	for i := range buf {
		buf[i] = float32(i & 1023)
	}
	workers := runtime.GOMAXPROCS(0)
	parts := make([][]float32, workers)
	for w := range parts {
		parts[w] = buf[w*len(buf)/workers : (w+1)*len(buf)/workers]
	}
	sums := make([]float32, workers)
	read := func(b *testing.B, f func(w int, part []float32)) {
		b.SetBytes(size)
		for b.Loop() {
			var wg sync.WaitGroup
			for w, part := range parts {
				wg.Go(func() { f(w, part) })
			}
			wg.Wait()
		}
	}
	b.Run("sum", func(b *testing.B) {
		read(b, func(w int, part []float32) {
			u := unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(part))), len(part))
			n := len(u) / 4
			s0, s1, s2, s3 := u[:n], u[n:2*n], u[2*n:3*n], u[3*n:4*n]
			var a0, a1, a2, a3 uint32
			for i := range s0 {
				a0 += s0[i]
				a1 += s1[i]
				a2 += s2[i]
				a3 += s3[i]
			}
			sums[w] += float32(a0 + a1 + a2 + a3)
		})
	})
	for _, k := range kernels {
		if k.name == "go" {
			continue
		}
		b.Run(k.name, func(b *testing.B) {
			const dim, rows = 256, 1024 // 1 MiB a call
			q := make([]float32, dim)
			out := make([][]float32, workers)
			for w := range out {
				out[w] = make([]float32, rows)
			}
			read(b, func(w int, part []float32) {
				for len(part) >= rows*dim {
					k.dot1(q, part, rows, dim, out[w])
					part = part[rows*dim:]
				}
				sums[w] += out[w][0]
			})
		})
	}
}
