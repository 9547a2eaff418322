package gpusearch

import (
	"fmt"
	"math"
	"unsafe"
)

// halfInf is IEEE binary16 +Inf; halfMaxFinite is the largest finite half
// (65504).
const (
	halfInf       = 0x7c00
	halfMaxFinite = 65504
)

// toHalf converts f to IEEE 754 binary16, rounding to nearest, ties to
// even (as the hardware conversion __float2half_rn does): results beyond
// the largest finite half (from 65520 up) are ±Inf, results below the
// smallest normal (2⁻¹⁴) are subnormal or ±0, ±Inf stays ±Inf and NaN
// stays a (quiet) NaN with the top bits of its payload.
func toHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man == 0 {
			return sign | halfInf
		}
		return sign | 0x7e00 | uint16(man>>13)
	}
	e := exp - 127 + 15 // the half's biased exponent
	if e >= 0x1f {
		return sign | halfInf
	}
	if e <= 0 {
		// Subnormal half (or zero): value = m · 2^(exp-150) with the
		// implicit bit, and a subnormal half counts units of 2⁻²⁴, so
		// shift m right by 126-exp = 14-e bits. Below half the smallest
		// subnormal (2⁻²⁵, e = -10) everything rounds to zero; float32
		// subnormals (exp 0) are far below it.
		if e < -10 {
			return sign
		}
		m := man | 0x800000
		shift := uint(14 - e)
		r := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && r&1 == 1 {
			r++ // may carry into the smallest normal: still correct
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && r&1 == 1 {
		r++ // a carry into the exponent is correct, up to Inf
	}
	return sign | uint16(r)
}

// fromHalf converts an IEEE binary16 value to float32 (exactly).
func fromHalf(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	man := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * float32(math.Ldexp(man, -24))
	case 0x1f:
		if man == 0 {
			return sign * float32(math.Inf(1))
		}
		return float32(math.NaN())
	}
	return sign * float32(math.Ldexp(1024+man, exp-25))
}

// errHalfRange is returned when fp16 storage meets a finite value that
// does not fit a half.
func errHalfRange(x float32) error {
	return fmt.Errorf("embedd/index/gpusearch: fp16 storage: component %v is beyond the half range (±%d); use fp32 storage for this data", x, halfMaxFinite)
}

// toHalves converts src into dst (len(dst) ≥ len(src)) with toHalf. It
// fails, naming the value, when a finite component rounds to ±Inf: its
// scores would be ±Inf or NaN on the device.
func toHalves(dst []uint16, src []float32) error {
	for i, x := range src {
		h := toHalf(x)
		if h&0x7fff == halfInf && !math.IsInf(float64(x), 0) {
			return errHalfRange(x)
		}
		dst[i] = h
	}
	return nil
}

// halfView returns b as uint16s (len(b)/2 of them). b must be 2-byte
// aligned, as pinned memory is.
func halfView(b []byte) []uint16 {
	if len(b) < 2 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
}
