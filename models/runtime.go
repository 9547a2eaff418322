package models

import (
	"fmt"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Runtime is a handle on the process-wide ONNX Runtime environment. ONNX
// Runtime allows one environment per process, so every Runtime shares it: the
// first OpenRuntime loads the library and creates the environment, and the
// last Close destroys it and unloads the library.
type Runtime struct {
	once sync.Once
}

// env guards the process-wide ONNX Runtime environment.
var env struct {
	mu      sync.Mutex // guards refs and libPath
	refs    int
	libPath string
}

// OpenRuntime loads ONNX Runtime from libPath (resolved with FindORTLibrary
// when empty) and returns a handle on its environment. The caller owns the
// Runtime and must Close it after every Session made from it is closed.
// Opening a second Runtime with a different library path while one is open
// is an error.
func OpenRuntime(libPath string) (*Runtime, error) {
	path, err := FindORTLibrary(libPath)
	if err != nil {
		return nil, err
	}
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.refs > 0 {
		if path != env.libPath {
			return nil, fmt.Errorf("embedd/models: ONNX Runtime already loaded from %q, cannot also load %q", env.libPath, path)
		}
		env.refs++
		return &Runtime{}, nil
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("embedd/models: loading ONNX Runtime from %q: %w: %w", path, err, ErrORTLibrary)
	}
	env.refs, env.libPath = 1, path
	return &Runtime{}, nil
}

// Version reports the loaded ONNX Runtime's version string.
func (r *Runtime) Version() string { return ort.GetVersion() }

// LibraryPath reports the file ONNX Runtime was loaded from.
func (r *Runtime) LibraryPath() string {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.libPath
}

// Close releases this handle; the last one destroys the environment. It is
// idempotent and nil-safe.
func (r *Runtime) Close() error {
	if r == nil {
		return nil
	}
	var err error
	r.once.Do(func() {
		env.mu.Lock()
		defer env.mu.Unlock()
		env.refs--
		if env.refs > 0 {
			return
		}
		env.libPath = ""
		if e := ort.DestroyEnvironment(); e != nil {
			err = fmt.Errorf("embedd/models: destroying ONNX Runtime environment: %w", e)
		}
	})
	return err
}
