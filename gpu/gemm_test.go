package gpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refGemm is C = alpha·op(A)·op(B) + beta·C by the column-major BLAS definition
// that Gemm documents: X(i, j) = X[i + j·ldX].
func refGemm(g Gemm, alpha float32, a, b []float32, beta float32, c []float32) {
	at := func(i, l int) float32 { // op(A)(i, l), i < M, l < K
		if g.TransA == OpT {
			return a[l+i*g.LDA]
		}
		return a[i+l*g.LDA]
	}
	bt := func(l, j int) float32 { // op(B)(l, j), l < K, j < N
		if g.TransB == OpT {
			return b[j+l*g.LDB]
		}
		return b[l+j*g.LDB]
	}
	for j := range g.N {
		for i := range g.M {
			var s float64
			for l := range g.K {
				s += float64(at(i, l)) * float64(bt(l, j))
			}
			c[i+j*g.LDC] = alpha*float32(s) + beta*c[i+j*g.LDC]
		}
	}
}

// TestScoresGemm checks ScoresGemm's argument mapping: the column-major GEMM it
// describes, run by refGemm on the row-major matrix and queries, gives the
// row-major scores S[qi][r] = Σ Q[qi][x]·M[r][x].
func TestScoresGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sh := range []struct{ n, q, d int }{{1, 1, 1}, {7, 3, 5}, {33, 1, 384}, {100, 17, 8}, {5, 9, 2}} {
		m := make([]float32, sh.n*sh.d)
		qs := make([]float32, sh.q*sh.d)
		for i := range m {
			m[i] = rng.Float32()*2 - 1
		}
		for i := range qs {
			qs[i] = rng.Float32()*2 - 1
		}
		g := ScoresGemm(sh.n, sh.q, sh.d)
		if err := g.validate(); err != nil {
			t.Fatalf("%+v: %v", sh, err)
		}
		if g.TransA != OpT || g.TransB != OpN {
			t.Fatalf("ScoresGemm ops = %v, %v; want T, N", g.TransA, g.TransB)
		}
		s := make([]float32, sh.q*sh.n)
		for i := range s {
			s[i] = 100 // beta = 0 must ignore it
		}
		refGemm(g, 1, m, qs, 0, s)
		for qi := range sh.q {
			for r := range sh.n {
				var want float64
				for x := range sh.d {
					want += float64(qs[qi*sh.d+x]) * float64(m[r*sh.d+x])
				}
				if got := s[qi*sh.n+r]; math.Abs(float64(got)-want) > 1e-4 {
					t.Fatalf("%+v: S[%d][%d] = %v, want %v", sh, qi, r, got, want)
				}
			}
		}
	}
}

// TestGemmValidate checks the shape rules.
func TestGemmValidate(t *testing.T) {
	bad := []Gemm{
		{M: 0, N: 1, K: 1, LDA: 1, LDB: 1, LDC: 1},
		{M: 4, N: 2, K: 3, LDA: 3, LDB: 3, LDC: 4},              // N: lda < m
		{TransA: OpT, M: 4, N: 2, K: 3, LDA: 2, LDB: 3, LDC: 4}, // T: lda < k
		{M: 4, N: 2, K: 3, LDA: 4, LDB: 3, LDC: 3},              // ldc < m
		{TransB: OpT, M: 4, N: 2, K: 3, LDA: 4, LDB: 1, LDC: 4}, // T: ldb < n
	}
	for _, g := range bad {
		if g.validate() == nil {
			t.Errorf("%+v validated", g)
		}
	}
	if err := (Gemm{M: 4, N: 2, K: 3, LDA: 4, LDB: 3, LDC: 4}).validate(); err != nil {
		t.Error(err)
	}
}
