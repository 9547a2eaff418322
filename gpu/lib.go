package gpu

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
)

// ErrNoCUDA is wrapped by the error Load returns when a required CUDA library cannot
// be opened (no driver, no toolkit, another OS), and by Lib.Load when NVRTC is absent.
// Callers use errors.Is(err, ErrNoCUDA) to fall back to the CPU.
var ErrNoCUDA = errors.New("embedd/gpu: CUDA not available")

// Lib holds the CUDA runtime, cuBLAS and (when present) NVRTC, opened at run time.
// Its methods, except Close, are safe for concurrent use.
type Lib struct {
	handles  []uintptr // opened libraries, in load order; closed in reverse
	names    []string  // the file name each handle was opened from
	rt       cudart
	blas     cublas
	nvrtc    *nvrtc // nil when NVRTC is absent
	nvrtcErr error  // why nvrtc is nil
	closed   bool
}

// Load opens libcudart and libcublas (CUDA 13, then 12) and, if present, libnvrtc.
// When a required library cannot be opened, the error wraps ErrNoCUDA and names
// every file tried with the loader's reason. On failure everything opened is closed.
// The caller frees the result with Close, after closing every Device opened from it.
func Load() (l *Lib, err error) {
	if len(cudartNames) == 0 {
		return nil, fmt.Errorf("%w: not supported on %s", ErrNoCUDA, runtime.GOOS)
	}
	l = &Lib{}
	lib := l
	defer func() {
		if err != nil {
			err = errors.Join(err, lib.Close())
		}
	}()
	h, err := l.open(cudartNames)
	if err != nil {
		return nil, err
	}
	if err := l.rt.bind(h); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoCUDA, l.names[len(l.names)-1], err)
	}
	if h, err = l.open(cublasNames); err != nil {
		return nil, err
	}
	if err := l.blas.bind(h); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoCUDA, l.names[len(l.names)-1], err)
	}
	if h, err = l.open(nvrtcNames); err != nil {
		l.nvrtcErr = err
	} else {
		var n nvrtc
		if err := n.bind(h); err != nil {
			l.nvrtcErr = fmt.Errorf("%w: %s: %w", ErrNoCUDA, l.names[len(l.names)-1], err)
		} else {
			l.nvrtc = &n
		}
	}
	return l, nil
}

// open tries names in order and records the first that opens.
func (l *Lib) open(names []string) (uintptr, error) {
	var reasons []string
	for _, n := range names {
		h, err := dlopen(n)
		if err == nil {
			l.handles = append(l.handles, h)
			l.names = append(l.names, n)
			return h, nil
		}
		reasons = append(reasons, fmt.Sprintf("%s (%v)", n, err))
	}
	return 0, fmt.Errorf("%w: could not open any of %s", ErrNoCUDA, strings.Join(reasons, ", "))
}

// Libraries returns the file names Load opened, in load order.
func (l *Lib) Libraries() []string {
	if l == nil {
		return nil
	}
	return append([]string(nil), l.names...)
}

// Close unloads the libraries in reverse load order, joining errors. It is nil-safe
// and idempotent. Every Device opened from l must be closed first, and Close must
// not run concurrently with other calls on l.
func (l *Lib) Close() error {
	if l == nil || l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for i := len(l.handles) - 1; i >= 0; i-- {
		if err := dlclose(l.handles[i]); err != nil {
			errs = append(errs, fmt.Errorf("embedd/gpu: dlclose %s: %w", l.names[i], err))
		}
	}
	l.handles, l.names = nil, nil
	return errors.Join(errs...)
}

// bindAll resolves each symbol of fns (name → pointer to a function-typed variable)
// in library h. A name may list alternatives separated by "|", tried in order (for
// entry points whose exported name differs between CUDA releases). A missing
// symbol is an error naming it.
func bindAll(h uintptr, fns map[string]any) error {
	for names, fptr := range fns {
		var err error
		for _, name := range strings.Split(names, "|") {
			if err = bindOne(h, name, fptr); err == nil {
				break
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
