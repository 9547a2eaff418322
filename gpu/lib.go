package gpu

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
)

// ErrNoCUDA is wrapped by the error Load returns when no CUDA release can be used
// (no driver, a driver too old for every runtime found, no toolkit, another OS),
// and by CompilePTX and NewTopK when run-time compiled kernels are unavailable
// (NVRTC absent, or a runtime older than 12.8). Callers use errors.Is(err,
// ErrNoCUDA) to fall back to the CPU.
var ErrNoCUDA = errors.New("embedd/gpu: CUDA not available")

// libSet is the file names of one CUDA major release's libraries, opened together.
type libSet struct {
	Major                int
	Runtime, BLAS, NVRTC string
}

// Lib holds the CUDA runtime, cuBLAS and (when present) NVRTC of one CUDA major
// release, opened at run time. Its methods, except Close, are safe for concurrent
// use.
type Lib struct {
	handles    []uintptr // opened libraries, in load order; closed in reverse
	names      []string  // the file name each handle was opened from
	major      int       // the CUDA major release opened
	rt         cudart
	blas       cublas
	nvrtc      *nvrtc       // nil when NVRTC is absent
	nvrtcErr   error        // why nvrtc is nil
	libraryErr error        // why the runtime's cudaLibrary API is absent, or nil
	log        *slog.Logger // nil: slog.Default()
	closed     bool
}

// Load opens the CUDA runtime, cuBLAS and, if present, NVRTC of the newest CUDA
// major release that works here: 13, then 12. A release is used when its runtime
// and cuBLAS open and bind and its runtime can count the devices
// (cudaGetDeviceCount); otherwise, e.g. with cudaErrorInsufficientDriver from a
// driver older than the runtime, it is closed and the next is tried. When none
// works, the error wraps ErrNoCUDA and gives every release's reason. The caller
// frees the result with Close, after closing every Device opened from it.
func Load() (*Lib, error) {
	if len(cudaMajors) == 0 {
		return nil, fmt.Errorf("%w: not supported on %s", ErrNoCUDA, runtime.GOOS)
	}
	args := []any{ErrNoCUDA}
	verbs := make([]string, 0, len(cudaMajors))
	for _, set := range cudaMajors {
		l, err := loadSet(set)
		if err == nil {
			return l, nil
		}
		args = append(args, err)
		verbs = append(verbs, "%w")
	}
	return nil, fmt.Errorf("%w: "+strings.Join(verbs, "; "), args...)
}

// loadSet opens one release's libraries (see Load). On failure it closes what it
// opened and says which library failed and why.
func loadSet(set libSet) (_ *Lib, err error) {
	l := &Lib{major: set.Major}
	defer func() {
		if err != nil {
			err = fmt.Errorf("CUDA %d: %w", set.Major, errors.Join(err, l.Close()))
		}
	}()
	h, err := l.open(set.Runtime)
	if err != nil {
		return nil, err
	}
	if err := l.rt.bind(h); err != nil {
		return nil, fmt.Errorf("%s: %w", set.Runtime, err)
	}
	if err := l.rt.bindLibraryAPI(h); err != nil {
		l.libraryErr = fmt.Errorf("%w: %s lacks the cudaLibrary API (CUDA 12.8 and later) that loads run-time compiled kernels: %w", ErrNoCUDA, set.Runtime, err)
	}
	var n int32
	if err := l.rt.check(l.rt.getDeviceCount(&n), "cudaGetDeviceCount"); err != nil {
		return nil, fmt.Errorf("%s: %w", set.Runtime, err)
	}
	if h, err = l.open(set.BLAS); err != nil {
		return nil, err
	}
	if err := l.blas.bind(h); err != nil {
		return nil, fmt.Errorf("%s: %w", set.BLAS, err)
	}
	if h, err = l.open(set.NVRTC); err != nil {
		l.nvrtcErr = fmt.Errorf("%w: NVRTC: %w", ErrNoCUDA, err)
		return l, nil
	}
	var nv nvrtc
	if err := nv.bind(h); err != nil {
		l.nvrtcErr = fmt.Errorf("%w: %s: %w", ErrNoCUDA, set.NVRTC, err)
		return l, nil
	}
	l.nvrtc = &nv
	return l, nil
}

// open opens the library file name and records it.
func (l *Lib) open(name string) (uintptr, error) {
	h, err := dlopen(name)
	if err != nil {
		return 0, fmt.Errorf("could not open %s: %w", name, err)
	}
	l.handles = append(l.handles, h)
	l.names = append(l.names, name)
	return h, nil
}

// Libraries returns the file names Load opened, in load order.
func (l *Lib) Libraries() []string {
	if l == nil {
		return nil
	}
	return append([]string(nil), l.names...)
}

// kernelsErr says why kernels compiled at run time cannot be loaded (no cudaLibrary
// API, no NVRTC), or is nil.
func (l *Lib) kernelsErr() error {
	if l.libraryErr != nil {
		return l.libraryErr
	}
	return l.nvrtcErr
}

// logger is where the package logs its fallbacks.
func (l *Lib) logger() *slog.Logger {
	if l.log != nil {
		return l.log
	}
	return slog.Default()
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
