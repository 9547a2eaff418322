package vec

// addGo is Add's portable loop; len(src) == len(dst).
func addGo(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}
