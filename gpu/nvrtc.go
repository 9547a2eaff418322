package gpu

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

const nvrtcSuccess = 0

// nvrtc holds the NVRTC entry points. nvrtcResult is an int enum (int32); the
// program is an opaque pointer.
type nvrtc struct {
	// nvrtcResult nvrtcCreateProgram(nvrtcProgram* prog, const char* src, const char* name,
	//     int numHeaders, const char* const* headers, const char* const* includeNames)
	createProgram func(prog *uintptr, src, name string, numHeaders int32, headers, includeNames unsafe.Pointer) int32
	// nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char* const* options)
	compileProgram func(prog uintptr, numOptions int32, options unsafe.Pointer) int32
	// nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t* ptxSizeRet)
	getPTXSize func(prog uintptr, size *uint64) int32
	// nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char* ptx)
	getPTX func(prog uintptr, ptx unsafe.Pointer) int32
	// nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t* logSizeRet)
	getProgramLogSize func(prog uintptr, size *uint64) int32
	// nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char* log)
	getProgramLog func(prog uintptr, log unsafe.Pointer) int32
	// nvrtcResult nvrtcDestroyProgram(nvrtcProgram* prog)
	destroyProgram func(prog *uintptr) int32
	// const char* nvrtcGetErrorString(nvrtcResult result)
	getErrorString func(result int32) string
}

func (n *nvrtc) bind(h uintptr) error {
	return bindAll(h, map[string]any{
		"nvrtcCreateProgram":     &n.createProgram,
		"nvrtcCompileProgram":    &n.compileProgram,
		"nvrtcGetPTXSize":        &n.getPTXSize,
		"nvrtcGetPTX":            &n.getPTX,
		"nvrtcGetProgramLogSize": &n.getProgramLogSize,
		"nvrtcGetProgramLog":     &n.getProgramLog,
		"nvrtcDestroyProgram":    &n.destroyProgram,
		"nvrtcGetErrorString":    &n.getErrorString,
	})
}

func (n *nvrtc) check(res int32, op string) error {
	if res == nvrtcSuccess {
		return nil
	}
	s := n.getErrorString(res)
	return &Error{Op: op, Code: int(res), Name: s, Text: s}
}

// cstring returns a NUL-terminated copy of s.
func cstring(s string) []byte { return append([]byte(s), 0) }

// CompilePTX compiles CUDA C source to PTX with NVRTC for compute capability
// major.minor (option --gpu-architecture=compute_XY, plus opts). On a compile error
// the *Error's Log holds NVRTC's log. It wraps ErrNoCUDA when libnvrtc is absent.
// The result is NUL-terminated, as cudaLibraryLoadData expects. CompilePTX needs no
// device and runs on the calling goroutine (NVRTC has no per-thread state).
func (l *Lib) CompilePTX(src, name string, major, minor int, opts ...string) (ptx []byte, err error) {
	if l == nil || l.closed {
		return nil, errors.New("embedd/gpu: CompilePTX on a closed Lib")
	}
	if l.nvrtc == nil {
		return nil, l.nvrtcErr
	}
	n := l.nvrtc
	var prog uintptr
	if err := n.check(n.createProgram(&prog, src, name, 0, nil, nil), "nvrtcCreateProgram("+name+")"); err != nil {
		return nil, err
	}
	defer func() {
		if derr := n.check(n.destroyProgram(&prog), "nvrtcDestroyProgram"); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	all := append([]string{fmt.Sprintf("--gpu-architecture=compute_%d%d", major, minor)}, opts...)
	// ptrs, passed to C, holds Go pointers: pin their targets for the call.
	var pin runtime.Pinner
	defer pin.Unpin()
	ptrs := make([]unsafe.Pointer, len(all))
	for i, o := range all {
		c := cstring(o)
		pin.Pin(&c[0])
		ptrs[i] = unsafe.Pointer(&c[0])
	}
	if res := n.compileProgram(prog, int32(len(ptrs)), unsafe.Pointer(&ptrs[0])); res != nvrtcSuccess {
		e := n.check(res, "nvrtcCompileProgram("+name+")").(*Error)
		var size uint64
		if n.getProgramLogSize(prog, &size) == nvrtcSuccess && size > 1 {
			buf := make([]byte, size)
			if n.getProgramLog(prog, unsafe.Pointer(&buf[0])) == nvrtcSuccess {
				e.Log = string(buf[:size-1])
			}
		}
		return nil, e
	}
	var size uint64
	if err := n.check(n.getPTXSize(prog, &size), "nvrtcGetPTXSize"); err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, errors.New("embedd/gpu: nvrtcGetPTXSize returned 0")
	}
	ptx = make([]byte, size) // size includes the terminating NUL
	if err := n.check(n.getPTX(prog, unsafe.Pointer(&ptx[0])), "nvrtcGetPTX"); err != nil {
		return nil, err
	}
	return ptx, nil
}

// module is code loaded onto a device with cudaLibraryLoadData (CUDA 12.0+: the
// runtime's context-independent loading; no driver API calls are needed).
type module struct {
	dev *Device
	h   uintptr
}

// loadModule loads PTX (or a cubin) on d. The caller frees it with Close; d must
// outlive it, and image need not outlive the call.
func loadModule(d *Device, image []byte) (*module, error) {
	if len(image) == 0 {
		return nil, errors.New("embedd/gpu: loadModule of an empty image")
	}
	m := &module{dev: d}
	err := d.do(func(rt *cudart) error {
		return rt.check(rt.libraryLoadData(&m.h, unsafe.Pointer(&image[0]), nil, nil, 0, nil, nil, 0), "cudaLibraryLoadData")
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// kernel returns the handle of an extern "C" kernel of the module
// (cudaLibraryGetKernel); the handle lives as long as the module.
func (m *module) kernel(name string) (uintptr, error) {
	var k uintptr
	err := m.dev.do(func(rt *cudart) error {
		return rt.check(rt.libraryGetKernel(&k, m.h, name), "cudaLibraryGetKernel(%s)", name)
	})
	return k, err
}

// Close unloads the module (cudaLibraryUnload); it is nil-safe and idempotent.
func (m *module) Close() error {
	if m == nil || m.h == 0 {
		return nil
	}
	h := m.h
	m.h = 0
	return m.dev.do(func(rt *cudart) error {
		return rt.check(rt.libraryUnload(h), "cudaLibraryUnload")
	})
}

// launch queues kernel k on s with grid and block sizes, dynamic shared memory and
// args (each a pointer to the argument's value, as cudaLaunchKernel's void** args).
// The args' values must be Go variables kept alive by the caller across the call.
func (s *Stream) launch(k uintptr, grid, block dim3, shared int, args []unsafe.Pointer) error {
	return s.dev.do(func(rt *cudart) error {
		// args, passed to C, holds Go pointers: pin their targets for the call.
		var pin runtime.Pinner
		defer pin.Unpin()
		var argv unsafe.Pointer
		for _, a := range args {
			pin.Pin(a)
		}
		if len(args) > 0 {
			argv = unsafe.Pointer(&args[0])
		}
		return rt.check(rt.launchKernel(k, grid, block, argv, uint64(shared), s.h), "cudaLaunchKernel")
	})
}
