package modelstest

import (
	"math"
	"strings"
)

// SampleTexts are texts of every shape a model meets: short, empty, long,
// accented, CJK, numbers and punctuation.
var SampleTexts = []string{
	"The aviation companies have increased regular air transportation.",
	"Hello, world",
	"",
	"Crème brûlée and naïve café owners",
	"東京は日本の首都です",
	strings.Repeat("A much longer sentence that keeps going and going. ", 12),
	"short",
	"Numbers like 3.14159 and 2,718 and e-mail@example.com",
}

// Cosine is the cosine similarity of a and b, computed in float64.
func Cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}
