// Package gpu loads CUDA at run time and exposes what exact vector search needs on
// an NVIDIA GPU: devices and their memory, streams, events, device memory, pinned
// and registered host memory, asynchronous copies, cuBLAS GEMM (fp32 and fp16
// storage) and a top-k selection kernel compiled at run time with NVRTC.
//
// # What is loaded
//
// [Load] opens, with purego (no cgo, no CUDA headers or libraries at build time):
//
//   - the CUDA runtime: libcudart.so.13, then libcudart.so.12 (required);
//   - cuBLAS: libcublas.so.13, then libcublas.so.12 (required);
//   - NVRTC: libnvrtc.so.13, then libnvrtc.so.12 (optional: without it
//     [Lib.CompilePTX] and [NewTopK] return an error wrapping [ErrNoCUDA] and
//     everything else still works).
//
// Only the prototypes the package calls are declared (see cudart.go, cublas.go,
// nvrtc.go). The binary builds and starts without CUDA anywhere; Load then returns
// an error wrapping [ErrNoCUDA] that lists the names tried, and callers fall back to
// the CPU. Kernels are compiled to PTX by NVRTC and loaded with the runtime's
// context-independent loading API (cudaLibraryLoadData, cudaLibraryGetKernel,
// cudaLaunchKernel; CUDA 12.0 and later), so libcuda.so.1 (the driver API) is never
// opened directly: the runtime opens it itself.
//
// # Why not gorgonia.org/cu
//
// gorgonia.org/cu v0.9.6 (the newest on the module proxy) does not compile against
// the CUDA 13 headers (cuCtxCreate became cuCtxCreate_v4; cuMemAdvise,
// cuMemPrefetchAsync and cuGraphAddDependencies changed), has no pinned-memory calls,
// and links libcuda at build time, so a binary built with it cannot start on a
// machine without CUDA (see ../shared/GPU.md).
//
// # Thread model
//
// The CUDA runtime's current device is per OS thread, and Go moves goroutines
// between threads. Each [Device] therefore owns one goroutine locked to its OS thread
// (runtime.LockOSThread) that calls cudaSetDevice once and then runs, one at a time,
// every CUDA call made for that device and for the objects made from it (streams,
// buffers, events, cuBLAS handles, kernels). Methods are safe for concurrent use;
// they queue on that thread. [Lib.Devices] uses a short-lived locked goroutine per
// device that exits without unlocking, so the thread whose current device it set is
// discarded.
//
// # Ownership
//
// Every handle is a Go value with a New… constructor (or a method that constructs)
// and a nil-safe, idempotent Close; constructors free what they made when they fail;
// there are no finalizers. Objects must be closed before what they were made from:
// buffers, streams, events, BLAS handles and TopK kernels before their Device, Devices
// before their Lib. [Lib.Close] unloads the libraries last, in reverse load order,
// joining errors.
//
// # Status
//
// Verified on CPU only: library loading and the algorithms' CPU models (the GEMM
// argument mapping and the top-k chunk/merge algorithm, ported line by line); the
// CUDA calls await a GPU run (issue 5). The bindings' mechanics (symbols, argument
// order and types, dim3 by value, the device thread, releases) are also run against
// a fake CUDA library built from testdata/fakecuda.c with gcc, which follows the
// documented prototypes but is not CUDA.
//
// Objects other than Lib and Device (streams, events, buffers, BLAS, TopK)
// may be used from several goroutines, but their Close must not run concurrently
// with other calls on the same object.
package gpu
