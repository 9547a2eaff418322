// Package device names where work runs: the CPU, a CUDA device, or "auto"
// (a CUDA device when one is usable, else the CPU). Model replicas
// (package models) and the search backend (package index/gpusearch) read
// their settings with the one Parse here, so "cuda" and "cuda:0" mean, and
// print as, the same device everywhere.
package device

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is the sort of device.
type Kind uint8

// The kinds; the zero value is CPU.
const (
	CPU  Kind = iota // the host's cores
	CUDA             // one CUDA device, by ordinal
	Auto             // CUDA device Ordinal when it is usable, else the CPU
)

// Device is a parsed device setting. The zero value is the CPU.
type Device struct {
	Kind Kind
	// Ordinal is the CUDA device for CUDA and Auto; 0 for the CPU.
	Ordinal int
}

// String returns the canonical spelling Parse reads back: "cpu",
// "cuda:N" (also for a setting written "cuda") or "auto" (with ":N" only
// when N is not 0).
func (d Device) String() string {
	switch d.Kind {
	case CUDA:
		return "cuda:" + strconv.Itoa(d.Ordinal)
	case Auto:
		if d.Ordinal != 0 {
			return "auto:" + strconv.Itoa(d.Ordinal)
		}
		return "auto"
	}
	return "cpu"
}

// Parse reads "cpu", "cuda" (device 0), "cuda:N", "auto" or "auto:N"
// (N ≥ 0, written without leading zeros or sign); the empty string is
// "cpu". The error says what it accepts.
func Parse(s string) (Device, error) {
	switch s {
	case "", "cpu":
		return Device{}, nil
	case "cuda":
		return Device{Kind: CUDA}, nil
	case "auto":
		return Device{Kind: Auto}, nil
	}
	for _, k := range []struct {
		prefix string
		kind   Kind
	}{{"cuda:", CUDA}, {"auto:", Auto}} {
		if n, ok := strings.CutPrefix(s, k.prefix); ok {
			if i, err := strconv.Atoi(n); err == nil && i >= 0 && n == strconv.Itoa(i) {
				return Device{Kind: k.kind, Ordinal: i}, nil
			}
		}
	}
	return Device{}, fmt.Errorf("embedd/device: %q is not one of cpu, cuda, cuda:N, auto, auto:N (N ≥ 0)", s)
}
