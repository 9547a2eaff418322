package models

import (
	"fmt"
	"strconv"
	"strings"
)

// Device says where a model runs: the CPU, a CUDA GPU, or the GPU when its
// provider loads and the CPU otherwise.
type Device struct {
	// Kind is "cpu", "cuda" or "auto".
	Kind string
	// ID is the CUDA device ordinal (cuda:N); 0 for cpu and auto.
	ID int
}

// String formats d the way ParseDevice reads it.
func (d Device) String() string {
	if d.Kind == "cuda" && d.ID != 0 {
		return "cuda:" + strconv.Itoa(d.ID)
	}
	return d.Kind
}

// ParseDevice reads "cpu", "cuda", "cuda:N" or "auto"; the empty string means
// "cpu".
func ParseDevice(s string) (Device, error) {
	switch s {
	case "", "cpu":
		return Device{Kind: "cpu"}, nil
	case "auto":
		return Device{Kind: "auto"}, nil
	case "cuda":
		return Device{Kind: "cuda"}, nil
	}
	if rest, ok := strings.CutPrefix(s, "cuda:"); ok {
		n, err := strconv.Atoi(rest)
		if err == nil && n >= 0 {
			return Device{Kind: "cuda", ID: n}, nil
		}
	}
	return Device{}, fmt.Errorf("embedd/models: device %q is not one of cpu, cuda, cuda:N, auto", s)
}
