package gpu

import (
	"fmt"
	"unsafe"
)

// CUDA runtime constants used here (driver_types.h; stable across CUDA 12 and 13).
const (
	cudaSuccess = 0

	cudaMemcpyHostToDevice   = 1
	cudaMemcpyDeviceToHost   = 2
	cudaMemcpyDeviceToDevice = 3

	cudaStreamNonBlocking    = 1
	cudaHostAllocPortable    = 1
	cudaHostRegisterPortable = 1
	cudaHostRegisterReadOnly = 8
	cudaEventDefault         = 0

	cudaDevAttrMultiProcessorCount           = 16
	cudaDevAttrComputeCapabilityMajor        = 75
	cudaDevAttrComputeCapabilityMinor        = 76
	cudaDevAttrHostRegisterSupported         = 99
	cudaDevAttrHostRegisterReadOnlySupported = 113
)

// dim3 mirrors CUDA's dim3 (three unsigned ints), which cudaLaunchKernel takes by
// value. It is not passed to C as a struct (purego v0.11.3 drops the third field on
// linux/arm64) but as the two integer registers it occupies (see regs).
type dim3 struct{ X, Y, Z uint32 }

// regs returns d as a C caller passes a dim3 argument on linux/amd64 (SysV) and
// linux/arm64 (AAPCS64): a 12-byte struct of integers goes in two consecutive
// general registers holding its bytes in memory order, little-endian, so x | y<<32
// and then z (the upper half is padding). Passing these two as uint64 arguments is
// ABI-identical to passing the struct.
func (d dim3) regs() (xy, z uint64) {
	return uint64(d.X) | uint64(d.Y)<<32, uint64(d.Z)
}

// cudart holds the CUDA runtime entry points, one function-typed field per prototype.
// cudaError_t is an int enum (int32); streams, events, libraries and kernels are
// opaque pointers (uintptr); device pointers are uintptr; host pointers and out
// parameters are unsafe.Pointer.
type cudart struct {
	// const char* cudaGetErrorName(cudaError_t error)
	getErrorName func(code int32) string
	// const char* cudaGetErrorString(cudaError_t error)
	getErrorString func(code int32) string
	// cudaError_t cudaGetDeviceCount(int* count)
	getDeviceCount func(count *int32) int32
	// cudaError_t cudaSetDevice(int device)
	setDevice func(device int32) int32
	// cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device)
	deviceGetAttribute func(value *int32, attr int32, device int32) int32
	// cudaError_t cudaDeviceGetPCIBusId(char* pciBusId, int len, int device)
	deviceGetPCIBusID func(buf unsafe.Pointer, n int32, device int32) int32
	// cudaError_t cudaMemGetInfo(size_t* free, size_t* total) — for the current device
	memGetInfo func(free, total *uint64) int32
	// cudaError_t cudaDeviceSynchronize(void)
	deviceSynchronize func() int32
	// cudaError_t cudaMalloc(void** devPtr, size_t size)
	malloc func(devPtr *uintptr, size uint64) int32
	// cudaError_t cudaFree(void* devPtr)
	free func(devPtr uintptr) int32
	// cudaError_t cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t stream)
	memsetAsync func(devPtr uintptr, value int32, count uint64, stream uintptr) int32
	// cudaError_t cudaHostAlloc(void** pHost, size_t size, unsigned int flags)
	hostAlloc func(pHost *unsafe.Pointer, size uint64, flags uint32) int32
	// cudaError_t cudaFreeHost(void* ptr)
	freeHost func(ptr unsafe.Pointer) int32
	// cudaError_t cudaHostRegister(void* ptr, size_t size, unsigned int flags)
	hostRegister func(ptr unsafe.Pointer, size uint64, flags uint32) int32
	// cudaError_t cudaHostUnregister(void* ptr)
	hostUnregister func(ptr unsafe.Pointer) int32
	// cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t stream)
	// dst and src are declared uintptr: they are device pointers or host memory
	// that is not managed by Go (pinned, registered or mapped).
	memcpyAsync func(dst, src uintptr, count uint64, kind int32, stream uintptr) int32
	// cudaError_t cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int flags)
	streamCreateWithFlags func(stream *uintptr, flags uint32) int32
	// cudaError_t cudaStreamDestroy(cudaStream_t stream)
	streamDestroy func(stream uintptr) int32
	// cudaError_t cudaStreamSynchronize(cudaStream_t stream)
	streamSynchronize func(stream uintptr) int32
	// cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags)
	streamWaitEvent func(stream, event uintptr, flags uint32) int32
	// cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags)
	eventCreateWithFlags func(event *uintptr, flags uint32) int32
	// cudaError_t cudaEventDestroy(cudaEvent_t event)
	eventDestroy func(event uintptr) int32
	// cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
	eventRecord func(event, stream uintptr) int32
	// cudaError_t cudaEventSynchronize(cudaEvent_t event)
	eventSynchronize func(event uintptr) int32
	// cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end)
	eventElapsedTime func(ms *float32, start, end uintptr) int32
	// The cudaLibrary API (CUDA 12.8 and later; bound by bindLibraryAPI, nil when absent).
	//
	// cudaError_t cudaLibraryLoadData(cudaLibrary_t* library, const void* code,
	//     cudaJitOption* jitOptions, void** jitOptionsValues, unsigned int numJitOptions,
	//     cudaLibraryOption* libraryOptions, void** libraryOptionValues, unsigned int numLibraryOptions)
	libraryLoadData func(lib *uintptr, code unsafe.Pointer, jitOpts, jitVals unsafe.Pointer, nJit uint32, libOpts, libVals unsafe.Pointer, nLib uint32) int32
	// cudaError_t cudaLibraryUnload(cudaLibrary_t library)
	libraryUnload func(lib uintptr) int32
	// cudaError_t cudaLibraryGetKernel(cudaKernel_t* pKernel, cudaLibrary_t library, const char* name)
	libraryGetKernel func(kernel *uintptr, lib uintptr, name string) int32
	// cudaError_t cudaLaunchKernel(const void* func, dim3 gridDim, dim3 blockDim, void** args, size_t sharedMem, cudaStream_t stream)
	// Each dim3 is passed as its two registers (dim3.regs).
	launchKernel func(fn uintptr, gridXY, gridZ, blockXY, blockZ uint64, args unsafe.Pointer, sharedMem uint64, stream uintptr) int32
	// cudaError_t cudaGetLastError(void)
	getLastError func() int32
}

func (r *cudart) bind(h uintptr) error {
	return bindAll(h, map[string]any{
		"cudaGetErrorName":          &r.getErrorName,
		"cudaGetErrorString":        &r.getErrorString,
		"cudaGetDeviceCount":        &r.getDeviceCount,
		"cudaSetDevice":             &r.setDevice,
		"cudaDeviceGetAttribute":    &r.deviceGetAttribute,
		"cudaDeviceGetPCIBusId":     &r.deviceGetPCIBusID,
		"cudaMemGetInfo":            &r.memGetInfo,
		"cudaDeviceSynchronize":     &r.deviceSynchronize,
		"cudaMalloc":                &r.malloc,
		"cudaFree":                  &r.free,
		"cudaMemsetAsync":           &r.memsetAsync,
		"cudaHostAlloc":             &r.hostAlloc,
		"cudaFreeHost":              &r.freeHost,
		"cudaHostRegister":          &r.hostRegister,
		"cudaHostUnregister":        &r.hostUnregister,
		"cudaMemcpyAsync":           &r.memcpyAsync,
		"cudaStreamCreateWithFlags": &r.streamCreateWithFlags,
		"cudaStreamDestroy":         &r.streamDestroy,
		"cudaStreamSynchronize":     &r.streamSynchronize,
		"cudaStreamWaitEvent":       &r.streamWaitEvent,
		"cudaEventCreateWithFlags":  &r.eventCreateWithFlags,
		"cudaEventDestroy":          &r.eventDestroy,
		"cudaEventRecord":           &r.eventRecord,
		"cudaEventSynchronize":      &r.eventSynchronize,
		// CUDA 12.8 added cudaEventElapsedTime_v2 (same prototype); accept either.
		"cudaEventElapsedTime|cudaEventElapsedTime_v2": &r.eventElapsedTime,
		"cudaLaunchKernel": &r.launchKernel,
		"cudaGetLastError": &r.getLastError,
	})
}

// bindLibraryAPI binds the cudaLibrary API, new in CUDA 12.8: all three entry
// points, or none and an error naming a missing one.
func (r *cudart) bindLibraryAPI(h uintptr) error {
	err := bindAll(h, map[string]any{
		"cudaLibraryLoadData":  &r.libraryLoadData,
		"cudaLibraryUnload":    &r.libraryUnload,
		"cudaLibraryGetKernel": &r.libraryGetKernel,
	})
	if err != nil {
		r.libraryLoadData, r.libraryUnload, r.libraryGetKernel = nil, nil, nil
	}
	return err
}

// Error is a failed CUDA runtime, cuBLAS or NVRTC call.
type Error struct {
	Op   string // the call and its key arguments, e.g. "cudaMalloc(1048576)"
	Code int    // the cudaError_t, cublasStatus_t or nvrtcResult value
	Name string // e.g. "cudaErrorMemoryAllocation"
	Text string // e.g. "out of memory"
	Log  string // NVRTC compile log, when there is one
}

// Error implements error.
func (e *Error) Error() string {
	s := fmt.Sprintf("embedd/gpu: %s: %s (%d): %s", e.Op, e.Name, e.Code, e.Text)
	if e.Log != "" {
		s += "\n" + e.Log
	}
	return s
}

// check turns a cudaError_t into nil or an *Error.
func (r *cudart) check(code int32, op string, args ...any) error {
	if code == cudaSuccess {
		return nil
	}
	if len(args) > 0 {
		op = fmt.Sprintf(op, args...)
	}
	return &Error{Op: op, Code: int(code), Name: r.getErrorName(code), Text: r.getErrorString(code)}
}
