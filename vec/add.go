package vec

import "math"

// addGo is Add's portable loop; len(src) == len(dst).
func addGo(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}

// addHalfGo is AddHalf's portable loop; len(src) == len(dst).
func addHalfGo(dst []float32, src []uint16) {
	for i, h := range src {
		dst[i] += Half(h)
	}
}

// scaleGo is Scale's portable loop.
func scaleGo(dst []float32, s float32) {
	for i := range dst {
		dst[i] *= s
	}
}

// Half returns the value of the IEEE 754 half-precision number with bits
// h, exactly (every half is a float32).
func Half(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	case frac == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// subnormal: frac × 2^-24, exact in float32
	v := float32(frac) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}
