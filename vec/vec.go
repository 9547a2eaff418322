// Package vec is the vector arithmetic every layer shares: the squared L2
// norm and L2 normalisation, computed one way (sums and scaling in float64)
// so that the models, the collections and both search backends agree to
// the last bit on what a unit vector is.
package vec

import "math"

// MinNorm is the smallest L2 norm Normalize accepts: float32's smallest
// normal number. Below it the components are subnormal, the direction is
// held by a few bits, and scaling in float32 overflows.
const MinNorm = 0x1p-126

// SquaredNorm is Σ v[i]², summed in float64.
func SquaredNorm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return s
}

// Norm returns v's L2 norm and whether Normalize accepts v: a norm that is
// zero, below MinNorm, or not finite (an Inf or NaN component) is not ok,
// since such a vector has no direction a cosine could use. It is the check
// alone, for callers that validate a vector someone else normalises.
func Norm(v []float32) (norm float64, ok bool) {
	norm = math.Sqrt(SquaredNorm(v))
	return norm, norm >= MinNorm && !math.IsInf(norm, 0) // false for NaN too
}

// Normalize scales v in place to unit L2 norm, each component scaled in
// float64, and returns the norm v had. A vector Norm does not accept is
// left as it is and ok is false.
func Normalize(v []float32) (norm float64, ok bool) {
	if norm, ok = Norm(v); !ok {
		return norm, false
	}
	inv := 1 / norm
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
	return norm, true
}
