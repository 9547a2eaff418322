//go:build linux

package gpu

import (
	"fmt"

	"github.com/ebitengine/purego"
)

// cudaMajors are the CUDA releases Load tries, newest first; each is opened as a
// whole (runtime, cuBLAS and NVRTC of the same major).
var cudaMajors = []libSet{
	{Major: 13, Runtime: "libcudart.so.13", BLAS: "libcublas.so.13", NVRTC: "libnvrtc.so.13"},
	{Major: 12, Runtime: "libcudart.so.12", BLAS: "libcublas.so.12", NVRTC: "libnvrtc.so.12"},
}

// dlopen opens a shared library with RTLD_NOW|RTLD_LOCAL, searching the loader's
// path (LD_LIBRARY_PATH, ld.so.cache).
func dlopen(name string) (uintptr, error) {
	return purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
}

func dlclose(h uintptr) error { return purego.Dlclose(h) }

// bindOne resolves symbol name in library h into fptr, a pointer to a
// function-typed variable whose signature mirrors the C prototype.
func bindOne(h uintptr, name string, fptr any) error {
	sym, err := purego.Dlsym(h, name)
	if err != nil || sym == 0 {
		return fmt.Errorf("embedd/gpu: symbol %s not found: %w", name, err)
	}
	purego.RegisterFunc(fptr, sym)
	return nil
}
