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
	// nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t* cubinSizeRet)
	getCUBINSize func(prog uintptr, size *uint64) int32
	// nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char* cubin)
	getCUBIN func(prog uintptr, cubin unsafe.Pointer) int32
	// nvrtcResult nvrtcGetNumSupportedArchs(int* numArchs)
	getNumSupportedArchs func(n *int32) int32
	// nvrtcResult nvrtcGetSupportedArchs(int* supportedArchs)
	getSupportedArchs func(archs unsafe.Pointer) int32
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
		"nvrtcCreateProgram":        &n.createProgram,
		"nvrtcCompileProgram":       &n.compileProgram,
		"nvrtcGetPTXSize":           &n.getPTXSize,
		"nvrtcGetPTX":               &n.getPTX,
		"nvrtcGetCUBINSize":         &n.getCUBINSize,
		"nvrtcGetCUBIN":             &n.getCUBIN,
		"nvrtcGetNumSupportedArchs": &n.getNumSupportedArchs,
		"nvrtcGetSupportedArchs":    &n.getSupportedArchs,
		"nvrtcGetProgramLogSize":    &n.getProgramLogSize,
		"nvrtcGetProgramLog":        &n.getProgramLog,
		"nvrtcDestroyProgram":       &n.destroyProgram,
		"nvrtcGetErrorString":       &n.getErrorString,
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
// The result is NUL-terminated, as cudaLibraryLoadData expects. The driver
// JIT-compiles PTX when it is loaded and refuses PTX newer than itself
// (cudaErrorUnsupportedPtxVersion): NewTopK therefore loads a cubin where it can.
// CompilePTX needs no device and runs on the calling goroutine (NVRTC has no
// per-thread state).
func (l *Lib) CompilePTX(src, name string, major, minor int, opts ...string) ([]byte, error) {
	return l.compile(src, name, fmt.Sprintf("compute_%d%d", major, minor), false, opts)
}

// compileFor compiles src for a device of compute capability major.minor: to a
// cubin for its real architecture sm_XY when this NVRTC knows it (no JIT when
// loaded, so a driver older than NVRTC loads it), else to PTX for the newest
// architecture below it that NVRTC knows (a device newer than NVRTC; its driver
// JIT-compiles the PTX).
func (l *Lib) compileFor(src, name string, major, minor int, opts ...string) ([]byte, error) {
	if err := l.usable(); err != nil {
		return nil, err
	}
	archs, err := l.nvrtc.supportedArchs()
	if err != nil {
		return nil, err
	}
	want, best := 10*major+minor, 0
	for _, a := range archs {
		if a == want {
			return l.compile(src, name, fmt.Sprintf("sm_%d", a), true, opts)
		}
		if a < want {
			best = max(best, a)
		}
	}
	if best == 0 {
		return nil, fmt.Errorf("embedd/gpu: NVRTC supports no architecture up to sm_%d (it supports %v)", want, archs)
	}
	return l.compile(src, name, fmt.Sprintf("compute_%d", best), false, opts)
}

// supportedArchs returns the architectures NVRTC compiles for, as 10·major+minor
// (nvrtcGetSupportedArchs).
func (n *nvrtc) supportedArchs() ([]int, error) {
	var cnt int32
	if err := n.check(n.getNumSupportedArchs(&cnt), "nvrtcGetNumSupportedArchs"); err != nil {
		return nil, err
	}
	if cnt <= 0 {
		return nil, errors.New("embedd/gpu: NVRTC supports no architecture")
	}
	raw := make([]int32, cnt)
	if err := n.check(n.getSupportedArchs(unsafe.Pointer(&raw[0])), "nvrtcGetSupportedArchs"); err != nil {
		return nil, err
	}
	archs := make([]int, cnt)
	for i, a := range raw {
		archs[i] = int(a)
	}
	return archs, nil
}

// usable reports why l cannot compile (closed, or no NVRTC), or nil.
func (l *Lib) usable() error {
	if l == nil || l.closed {
		return errors.New("embedd/gpu: compile on a closed Lib")
	}
	if l.nvrtc == nil {
		return l.nvrtcErr
	}
	return nil
}

// compile compiles src with --gpu-architecture=arch plus opts and returns the
// program's PTX, or its cubin when cubin is set (arch must then be a real
// architecture, sm_XY). On a compile error the *Error's Log holds NVRTC's log.
func (l *Lib) compile(src, name, arch string, cubin bool, opts []string) (image []byte, err error) {
	if err := l.usable(); err != nil {
		return nil, err
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
	all := append([]string{"--gpu-architecture=" + arch}, opts...)
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
		e := n.check(res, "nvrtcCompileProgram("+name+", "+arch+")").(*Error)
		var size uint64
		if n.getProgramLogSize(prog, &size) == nvrtcSuccess && size > 1 {
			buf := make([]byte, size)
			if n.getProgramLog(prog, unsafe.Pointer(&buf[0])) == nvrtcSuccess {
				e.Log = string(buf[:size-1])
			}
		}
		return nil, e
	}
	getSize, get, what := n.getPTXSize, n.getPTX, "PTX"
	if cubin {
		getSize, get, what = n.getCUBINSize, n.getCUBIN, "CUBIN"
	}
	var size uint64
	if err := n.check(getSize(prog, &size), "nvrtcGet"+what+"Size"); err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, fmt.Errorf("embedd/gpu: nvrtcGet%sSize returned 0", what)
	}
	image = make([]byte, size) // PTX's size includes the terminating NUL
	if err := n.check(get(prog, unsafe.Pointer(&image[0])), "nvrtcGet"+what); err != nil {
		return nil, err
	}
	return image, nil
}

// module is code loaded onto a device with cudaLibraryLoadData (CUDA 12.8+: the
// runtime's context-independent loading; no driver API calls are needed).
type module struct {
	dev *Device
	h   uintptr
	// image is the code the library was loaded from, kept until it is unloaded:
	// CUDA does not promise to copy it (with lazy loading, CUDA_MODULE_LOADING=LAZY,
	// the default since 12.2, kernels are loaded from it at first use).
	image []byte
}

// loadModule loads PTX or a cubin on d; it keeps image until Close, and the caller
// must not change it. The caller frees the module with Close; d must outlive it.
// The runtime must have the cudaLibrary API (Lib.kernelsErr).
func loadModule(d *Device, image []byte) (*module, error) {
	if len(image) == 0 {
		return nil, errors.New("embedd/gpu: loadModule of an empty image")
	}
	m := &module{dev: d, image: image}
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
	err := m.dev.do(func(rt *cudart) error {
		return rt.check(rt.libraryUnload(h), "cudaLibraryUnload")
	})
	m.image = nil
	return err
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
		gridXY, gridZ := grid.regs()
		blockXY, blockZ := block.regs()
		return rt.check(rt.launchKernel(k, gridXY, gridZ, blockXY, blockZ, argv, uint64(shared), s.h), "cudaLaunchKernel")
	})
}
