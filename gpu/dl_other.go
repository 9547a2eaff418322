//go:build !linux

package gpu

import "errors"

// CUDA is loaded on Linux only; elsewhere Load reports ErrNoCUDA without trying.
var cudaMajors []libSet

var errNoDL = errors.New("embedd/gpu: run-time loading is implemented on linux only")

func dlopen(string) (uintptr, error)     { return 0, errNoDL }
func dlclose(uintptr) error              { return errNoDL }
func bindOne(uintptr, string, any) error { return errNoDL }
