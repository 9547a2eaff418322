// Package gpu loads CUDA at run time and exposes what exact vector search needs on
// an NVIDIA GPU: devices and their memory, streams, events, device memory, pinned
// and registered host memory, asynchronous copies, cuBLAS GEMM (fp32 and fp16
// storage) and a top-k selection kernel compiled at run time with NVRTC.
//
// # What is loaded
//
// [Load] opens, with purego (no cgo, no CUDA headers or libraries at build time),
// the libraries of one CUDA major release, newest first:
//
//   - the CUDA runtime: libcudart.so.13, else libcudart.so.12 (required);
//   - cuBLAS of the same major: libcublas.so.13 or libcublas.so.12 (required);
//   - NVRTC of the same major: libnvrtc.so.13 or libnvrtc.so.12 (optional: without
//     it [Lib.CompilePTX] and [NewTopK] return an error wrapping [ErrNoCUDA] and
//     everything else still works).
//
// A release is used when its runtime and cuBLAS open and bind and the runtime can
// count the devices (cudaGetDeviceCount). A driver older than the runtime makes
// every call return cudaErrorInsufficientDriver (35); the release is then closed
// and the next one tried, so a CUDA 12 installation next to a CUDA 13 one still
// works on a CUDA 12 driver. Libraries of different majors are never mixed.
//
// Only the prototypes the package calls are declared (see cudart.go, cublas.go,
// nvrtc.go). The binary builds and starts without CUDA anywhere; Load then returns
// an error wrapping [ErrNoCUDA] that gives every release's reason, and callers fall
// back to the CPU.
//
// Kernels are compiled at run time by NVRTC, to a cubin for the device's own
// architecture (sm_XY, nvrtcGetCUBIN) when that NVRTC knows it: a cubin needs no
// JIT in the driver, and the driver's JIT refuses PTX newer than itself
// (cudaErrorUnsupportedPtxVersion), which a CUDA 12.9 NVRTC on a 12.2 driver would
// produce. A device newer than NVRTC gets PTX for the newest architecture NVRTC
// knows, JIT-compiled by its (necessarily newer) driver. The image is loaded with
// the runtime's context-independent loading API (cudaLibraryLoadData,
// cudaLibraryGetKernel, cudaLaunchKernel) and kept until it is unloaded, so
// libcuda.so.1 (the driver API) is never opened directly: the runtime opens it
// itself.
//
// # Supported CUDA releases and platforms
//
//   - CUDA 13.x, and CUDA 12.8 and later: everything.
//   - CUDA 12.0 to 12.7: everything but kernels. The runtime's cudaLibrary API
//     (cudaLibraryLoadData, cudaLibraryGetKernel, cudaLibraryUnload) is not in
//     their libcudart.so.12, so it is bound optionally, by symbol: without it
//     Load, devices, memory, copies and cuBLAS GEMM work, and [NewTopK] returns an
//     error wrapping [ErrNoCUDA] that says so (package gpusearch then does not
//     start on the device).
//   - CUDA 11 and older: not tried (Load opens the .so.13 and .so.12 names only).
//     Every driver since R525 (2022) runs CUDA 12 runtimes, so CUDA 11 would only
//     serve older drivers, and its runtime has no cudaLibrary API either.
//   - The driver must be recent enough for the runtime's major: R580 or later for
//     CUDA 13, R525 or later for CUDA 12 (minor-version compatibility: a 12.x
//     runtime runs on any 12 driver; kernels load as cubins, so no JIT is needed).
//   - linux/amd64 and linux/arm64 (Grace Hopper and other SBSA servers, Jetson with
//     JetPack 6): the platforms for which NVIDIA ships these libraries under these
//     names, and which purego supports without cgo. Every argument is an
//     integer, pointer, float or string, passed identically on both (SysV and
//     AAPCS64); cudaLaunchKernel's two dim3 structs are passed as the two integer
//     registers each occupies, because purego v0.11.3 misplaces the third field
//     of a 12-byte struct on arm64. Devices that cannot register host memory, or
//     not read-only (cudaDevAttrHostRegisterSupported,
//     cudaDevAttrHostRegisterReadOnlySupported), get a fallback in [HostRegister].
//   - Everywhere else (Windows, where the libraries are cudart64_13.dll and the
//     like; macOS, which has no CUDA; other architectures): Load returns
//     [ErrNoCUDA] without trying.
//
// # Why not gorgonia.org/cu
//
// gorgonia.org/cu v0.9.6 (the newest on the module proxy) does not compile against
// the CUDA 13 headers (cuCtxCreate became cuCtxCreate_v4; cuMemAdvise,
// cuMemPrefetchAsync and cuGraphAddDependencies changed), has no pinned-memory calls,
// and links libcuda at build time through cgo, so a binary built with it needs the
// CUDA toolkit to build and cannot start on a machine without the CUDA driver.
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
// order and types, the dim3 register packing against a C function taking dim3 by
// value, the release fallback, optional symbols, the device thread, the
// host-registration fallbacks, releases) are also run against a fake CUDA library
// built from testdata/fakecuda.c with gcc, which follows the documented prototypes
// but is not CUDA. The arm64 build is checked by GOARCH=arm64 go vet, not run.
//
// Objects other than Lib and Device (streams, events, buffers, BLAS, TopK)
// may be used from several goroutines, but their Close must not run concurrently
// with other calls on the same object.
package gpu
