package models

import (
	"fmt"
)

// Pooling says how token hidden states become one vector.
type Pooling string

// The pooling modes embedd implements (sentence-transformers' names in
// 1_Pooling/config.json: pooling_mode_mean_tokens, pooling_mode_cls_token,
// pooling_mode_lasttoken).
const (
	PoolMean      Pooling = "mean"      // average over tokens where attention_mask is 1
	PoolCLS       Pooling = "cls"       // the first token's state
	PoolLastToken Pooling = "lasttoken" // the last token where attention_mask is 1
)

// ParsePooling reads a pooling mode name.
func ParsePooling(s string) (Pooling, error) {
	switch p := Pooling(s); p {
	case PoolMean, PoolCLS, PoolLastToken:
		return p, nil
	}
	return "", fmt.Errorf("embedd/models: pooling %q is not one of mean, cls, lasttoken", s)
}

// pool writes into dst (len hidden) the pooled vector of one sequence whose
// token states are rows [0, seqLen) of states (row-major, width len(dst)) and
// whose first n tokens are real (right padding).
func pool(dst, states []float32, n int, mode Pooling) {
	h := len(dst)
	switch mode {
	case PoolCLS:
		copy(dst, states[:h])
	case PoolLastToken:
		copy(dst, states[(n-1)*h:n*h])
	default:
		clear(dst)
		for t := range n {
			row := states[t*h : (t+1)*h]
			for i, v := range row {
				dst[i] += v
			}
		}
		inv := 1 / float32(n)
		for i := range dst {
			dst[i] *= inv
		}
	}
}
