package gpusearch

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// halfTable is the reference: every non-negative finite half decoded to
// float64 independently of fromHalf, in increasing order (bit pattern i
// at index i), then 65536 standing for +Inf: it is where a value rounds
// to Inf under round-to-nearest-even (65504 + one ulp of 32, and 65504's
// mantissa is odd, so the tie 65520 goes to Inf).
var halfTable = func() []float64 {
	t := make([]float64, 0x7c01)
	for h := range 0x7c00 {
		e, m := h>>10, float64(h&0x3ff)
		if e == 0 {
			t[h] = m / (1 << 24)
		} else {
			t[h] = (1 + m/1024) * math.Pow(2, float64(e-15))
		}
	}
	t[0x7c00] = 65536
	return t
}()

// refHalf rounds f to a half by searching the table: the nearest value,
// ties to the even bit pattern.
func refHalf(f float32) uint16 {
	x := float64(f)
	var sign uint16
	if math.Signbit(x) {
		sign, x = 0x8000, -x
	}
	if math.IsNaN(x) {
		return 0x7e00
	}
	if math.IsInf(x, 0) || x >= 65536 {
		return sign | halfInf
	}
	i := sort.SearchFloat64s(halfTable, x) // first ≥ x
	if halfTable[i] == x {
		return sign | uint16(i)
	}
	lo, hi := i-1, i
	dl, dh := x-halfTable[lo], halfTable[hi]-x
	switch {
	case dl < dh:
		return sign | uint16(lo)
	case dh < dl:
		return sign | uint16(hi)
	case lo%2 == 0:
		return sign | uint16(lo)
	}
	return sign | uint16(hi)
}

func checkHalf(t *testing.T, f float32) {
	t.Helper()
	got, want := toHalf(f), refHalf(f)
	if math.IsNaN(float64(f)) {
		if got&0x7c00 != 0x7c00 || got&0x3ff == 0 || got&0x8000 != uint16(math.Float32bits(f)>>16)&0x8000 {
			t.Fatalf("toHalf(NaN %#08x) = %#04x, not a NaN of the same sign", math.Float32bits(f), got)
		}
		return
	}
	if got != want {
		t.Fatalf("toHalf(%v = %#08x) = %#04x (%v), want %#04x (%v)", f, math.Float32bits(f), got, fromHalf(got), want, fromHalf(want))
	}
}

func TestToHalfEdges(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00}, {-2, 0xc000}, {0.5, 0x3800},
		{65504, 0x7bff}, {65519.99, 0x7bff}, {65520, 0x7c00}, {1e6, 0x7c00}, {-1e6, 0xfc00},
		{inf, 0x7c00}, {-inf, 0xfc00},
		{float32(math.Ldexp(1, -14)), 0x0400},   // smallest normal
		{float32(math.Ldexp(1, -24)), 0x0001},   // smallest subnormal
		{float32(math.Ldexp(1, -25)), 0},        // tie to even: 0
		{float32(math.Ldexp(1.5, -25)), 0x0001}, // above the tie
		{float32(math.Ldexp(3, -25)), 0x0002},   // 1.5 units: tie to even 2
		{float32(math.Ldexp(1, -26)), 0},
		{float32(math.Ldexp(1023.5, -24)), 0x0400}, // rounds up into the smallest normal
		{1 + 1.0/2048, 0x3c00},                     // tie: even (1.0)
		{1 + 3.0/2048, 0x3c02},                     // tie: even (up)
		{math.SmallestNonzeroFloat32, 0}, {-math.SmallestNonzeroFloat32, 0x8000},
		{math.MaxFloat32, 0x7c00},
	} {
		if got := toHalf(c.f); got != c.want {
			t.Errorf("toHalf(%v) = %#04x, want %#04x", c.f, got, c.want)
		}
		checkHalf(t, c.f)
	}
	nan := toHalf(float32(math.NaN()))
	if nan&0x7c00 != 0x7c00 || nan&0x3ff == 0 {
		t.Errorf("toHalf(NaN) = %#04x, not a NaN", nan)
	}
	// A NaN whose payload lives only in the low bits stays a NaN.
	if h := toHalf(math.Float32frombits(0x7f800001)); h&0x3ff == 0 {
		t.Errorf("toHalf(signalling NaN 0x7f800001) = %#04x, not a NaN", h)
	}
}

// TestHalfRoundTrip: every half converts to float32 and back unchanged.
func TestHalfRoundTrip(t *testing.T) {
	for h := range 1 << 16 {
		f := fromHalf(uint16(h))
		if math.IsNaN(float64(f)) {
			continue
		}
		if got := toHalf(f); got != uint16(h) {
			t.Fatalf("toHalf(fromHalf(%#04x) = %v) = %#04x", h, f, got)
		}
		if h < 0x7c00 && float64(f) != halfTable[h] {
			t.Fatalf("fromHalf(%#04x) = %v, want %v", h, f, halfTable[h])
		}
	}
}

// TestToHalfMatchesReference compares with the table over random bit
// patterns, random values in the half range, every float32 near each
// rounding boundary (ties and their neighbours) and the subnormal range.
func TestToHalfMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	n := 300000
	if testing.Short() {
		n = 30000
	}
	for range n {
		checkHalf(t, math.Float32frombits(rng.Uint32()))
		// Exponents where halves live (2⁻²⁶ .. 2¹⁷), any mantissa.
		e := uint32(101 + rng.IntN(44))
		checkHalf(t, math.Float32frombits(rng.Uint32()&0x807fffff|e<<23))
		checkHalf(t, float32(rng.NormFloat64()*0.1))
	}
	// Around every rounding tie of every positive half: the tie is
	// halfway between consecutive halves; check it and 2 float32 ulps
	// either side, both signs.
	for h := range 0x7c00 {
		mid := float32((halfTable[h] + halfTable[h+1]) / 2)
		if h+1 == 0x7c00 {
			mid = 65520
		}
		for d := -2; d <= 2; d++ {
			f := math.Float32frombits(uint32(int64(math.Float32bits(mid)) + int64(d)))
			checkHalf(t, f)
			checkHalf(t, -f)
		}
	}
	// Dense over the subnormal half range and just below it.
	lo, hi := math.Float32bits(float32(math.Ldexp(1, -27))), math.Float32bits(float32(math.Ldexp(1, -13)))
	for b := lo; b < hi; b += 97 {
		checkHalf(t, math.Float32frombits(b))
	}
}

func TestToHalvesRange(t *testing.T) {
	src := []float32{1, -0.25, float32(math.Inf(-1)), 3e-8}
	dst := make([]uint16, len(src))
	if err := toHalves(dst, src); err != nil {
		t.Fatal(err)
	}
	want := []uint16{0x3c00, 0xb400, 0xfc00, toHalf(3e-8)}
	if !slices.Equal(dst, want) {
		t.Fatalf("toHalves = %#04x, want %#04x", dst, want)
	}
	if err := toHalves(dst, []float32{1, 70000}); err == nil {
		t.Fatal("toHalves(70000): no error")
	}
	if err := toHalves(dst, []float32{65519}); err != nil {
		t.Fatalf("toHalves(65519) (rounds to 65504): %v", err)
	}
}

// TestHalfScoreError models fp16 scoring on the CPU (rows and queries
// rounded to half, products summed in float32, as GemmEx with fp32
// compute) on unit-scale data at dimension 384 and checks the documented
// bound: within 1e-3 of the exact score.
func TestHalfScoreError(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const dim = 384
	unit := func() []float32 {
		v := make([]float32, dim)
		var ss float64
		for j := range v {
			v[j] = float32(rng.NormFloat64())
			ss += float64(v[j]) * float64(v[j])
		}
		for j := range v {
			v[j] = float32(float64(v[j]) / math.Sqrt(ss))
		}
		return v
	}
	worst := 0.0
	for range 3000 {
		q, r := unit(), unit()
		var exact float64
		var half float32
		for j := range q {
			exact += float64(q[j]) * float64(r[j])
			half += fromHalf(toHalf(q[j])) * fromHalf(toHalf(r[j]))
		}
		worst = max(worst, math.Abs(float64(half)-exact))
	}
	if worst > 1e-3 {
		t.Fatalf("fp16 model: worst score error %v, want ≤ 1e-3", worst)
	}
	t.Logf("fp16 model: worst score error %.2e over 3000 unit pairs at dim %d", worst, dim)
}
