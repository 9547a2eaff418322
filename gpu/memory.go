package gpu

import (
	"errors"
	"fmt"
	"unsafe"
)

// DevicePtr is an address in device memory. Offsets are added in bytes with Add.
type DevicePtr uintptr

// Add returns p advanced by off bytes.
func (p DevicePtr) Add(off int) DevicePtr { return p + DevicePtr(off) }

// DeviceBuffer is device memory from cudaMalloc.
type DeviceBuffer struct {
	dev  *Device
	ptr  DevicePtr
	size int
}

// NewDeviceBuffer allocates size bytes on d (cudaMalloc; contents undefined). The
// caller frees it with Close; d must outlive it.
func NewDeviceBuffer(d *Device, size int) (*DeviceBuffer, error) {
	if size <= 0 {
		return nil, fmt.Errorf("embedd/gpu: device buffer size %d is not positive", size)
	}
	b := &DeviceBuffer{dev: d, size: size}
	err := d.do(func(rt *cudart) error {
		var p uintptr
		err := rt.check(rt.malloc(&p, uint64(size)), "cudaMalloc(%d)", size)
		b.ptr = DevicePtr(p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Ptr returns the buffer's device address.
func (b *DeviceBuffer) Ptr() DevicePtr { return b.ptr }

// Len returns the buffer's size in bytes.
func (b *DeviceBuffer) Len() int { return b.size }

// Close frees the memory (cudaFree, which waits for work using it to finish); it is
// nil-safe and idempotent.
func (b *DeviceBuffer) Close() error {
	if b == nil || b.ptr == 0 {
		return nil
	}
	p := b.ptr
	b.ptr = 0
	return b.dev.do(func(rt *cudart) error {
		return rt.check(rt.free(uintptr(p)), "cudaFree")
	})
}

// PinnedBuffer is page-locked host memory from cudaHostAlloc (portable: usable from
// every device). Copies from and to it run asynchronously at full PCIe speed.
type PinnedBuffer struct {
	dev *Device
	ptr unsafe.Pointer
	buf []byte
}

// NewPinnedBuffer allocates size bytes of pinned host memory. The caller frees it
// with Close, after the last copy using it has completed; d must outlive it. The
// memory is not managed by Go: slices from Bytes or Float32s must not be used
// after Close.
func NewPinnedBuffer(d *Device, size int) (*PinnedBuffer, error) {
	if size <= 0 {
		return nil, fmt.Errorf("embedd/gpu: pinned buffer size %d is not positive", size)
	}
	b := &PinnedBuffer{dev: d}
	err := d.do(func(rt *cudart) error {
		return rt.check(rt.hostAlloc(&b.ptr, uint64(size), cudaHostAllocPortable), "cudaHostAlloc(%d)", size)
	})
	if err != nil {
		return nil, err
	}
	b.buf = unsafe.Slice((*byte)(b.ptr), size)
	return b, nil
}

// Bytes returns the buffer's memory.
func (b *PinnedBuffer) Bytes() []byte { return b.buf }

// Float32s returns the buffer's memory as float32s (len = size/4).
func (b *PinnedBuffer) Float32s() []float32 {
	return unsafe.Slice((*float32)(b.ptr), len(b.buf)/4)
}

// Close frees the memory (cudaFreeHost); it is nil-safe and idempotent.
func (b *PinnedBuffer) Close() error {
	if b == nil || b.ptr == nil {
		return nil
	}
	p := b.ptr
	b.ptr, b.buf = nil, nil
	return b.dev.do(func(rt *cudart) error {
		return rt.check(rt.freeHost(p), "cudaFreeHost")
	})
}

// Registered is host memory page-locked in place with cudaHostRegister, such as the
// memory-mapped matrix of a collection, or, on a device that cannot register host
// memory, a pinned copy of it (see HostRegister).
type Registered struct {
	dev    *Device
	ptr    unsafe.Pointer // the registered memory; nil for a pinned copy
	mem    []byte         // what copies read: the registered memory or the pinned copy
	pinned *PinnedBuffer  // the pinned copy, or nil
}

// HostRegister page-locks mem in place (cudaHostRegister, portable and, when
// readOnly, cudaHostRegisterReadOnly, which suits a read-only mapping). mem must not
// be Go-heap memory (the garbage collector could free it while CUDA holds it): use
// an mmap'd region, e.g. index's mapped matrix. For a []float32 pass
// unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f)). Copies use the result's
// Bytes. The caller frees the result with Close (cudaHostUnregister) before
// unmapping mem; d must outlive it.
//
// It asks the device first (cudaDevAttrHostRegisterSupported,
// cudaDevAttrHostRegisterReadOnlySupported) and falls back, with a log line: without
// read-only registration it registers mem read-write; without registration it
// copies read-only mem into a PinnedBuffer (later changes to mem are not seen), and
// fails for writable mem with an error wrapping errors.ErrUnsupported.
func HostRegister(d *Device, mem []byte, readOnly bool) (*Registered, error) {
	if len(mem) == 0 {
		return nil, fmt.Errorf("embedd/gpu: HostRegister of empty memory")
	}
	var can []int // host register supported, read-only supported
	err := d.do(func(rt *cudart) (err error) {
		can, err = rt.attributes(d.ordinal, cudaDevAttrHostRegisterSupported, cudaDevAttrHostRegisterReadOnlySupported)
		return err
	})
	if err != nil {
		return nil, err
	}
	log := d.lib.logger()
	if can[0] == 0 {
		if !readOnly {
			return nil, fmt.Errorf("embedd/gpu: device %d cannot register host memory (cudaDevAttrHostRegisterSupported is 0): %w", d.ordinal, errors.ErrUnsupported)
		}
		log.Warn("embedd/gpu: device cannot register host memory (cudaDevAttrHostRegisterSupported is 0); copying it into pinned memory",
			"device", d.ordinal, "bytes", len(mem))
		p, err := NewPinnedBuffer(d, len(mem))
		if err != nil {
			return nil, err
		}
		copy(p.Bytes(), mem)
		return &Registered{dev: d, mem: p.Bytes(), pinned: p}, nil
	}
	flags := uint32(cudaHostRegisterPortable)
	switch {
	case readOnly && can[1] != 0:
		flags |= cudaHostRegisterReadOnly
	case readOnly:
		log.Info("embedd/gpu: device cannot register host memory read-only (cudaDevAttrHostRegisterReadOnlySupported is 0); registering it read-write",
			"device", d.ordinal, "bytes", len(mem))
	}
	r := &Registered{dev: d, ptr: unsafe.Pointer(&mem[0]), mem: mem}
	err = d.do(func(rt *cudart) error {
		return rt.check(rt.hostRegister(r.ptr, uint64(len(mem)), flags), "cudaHostRegister(%d bytes, flags %d)", len(mem), flags)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Bytes returns the memory to pass to copies: the registered memory, or its pinned
// copy. It is nil after Close.
func (r *Registered) Bytes() []byte { return r.mem }

// Close unregisters the memory (cudaHostUnregister) or frees its pinned copy; it is
// nil-safe and idempotent.
func (r *Registered) Close() error {
	if r == nil {
		return nil
	}
	r.mem = nil
	if r.pinned != nil {
		p := r.pinned
		r.pinned = nil
		return p.Close()
	}
	if r.ptr == nil {
		return nil
	}
	p := r.ptr
	r.ptr = nil
	return r.dev.do(func(rt *cudart) error {
		return rt.check(rt.hostUnregister(p), "cudaHostUnregister")
	})
}

// hostAddr returns the address of host memory passed to an async copy.
func hostAddr(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

// CopyHtoD queues a copy of src to device address dst on s (cudaMemcpyAsync).
// src must be pinned (PinnedBuffer) or registered (HostRegister) memory, or other
// memory Go does not manage, and must stay valid and unchanged until the copy has
// completed (Stream.Synchronize or an Event).
func (s *Stream) CopyHtoD(dst DevicePtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	return s.dev.do(func(rt *cudart) error {
		return rt.check(rt.memcpyAsync(uintptr(dst), hostAddr(src), uint64(len(src)), cudaMemcpyHostToDevice, s.h), "cudaMemcpyAsync(HtoD, %d)", len(src))
	})
}

// CopyDtoH queues a copy of len(dst) bytes from device address src into dst on s.
// dst must be pinned or registered memory, or other memory Go does not manage, and
// must not be read until the copy has completed.
func (s *Stream) CopyDtoH(dst []byte, src DevicePtr) error {
	if len(dst) == 0 {
		return nil
	}
	return s.dev.do(func(rt *cudart) error {
		return rt.check(rt.memcpyAsync(hostAddr(dst), uintptr(src), uint64(len(dst)), cudaMemcpyDeviceToHost, s.h), "cudaMemcpyAsync(DtoH, %d)", len(dst))
	})
}

// CopyDtoD queues a copy of n bytes between device addresses on s.
func (s *Stream) CopyDtoD(dst, src DevicePtr, n int) error {
	if n <= 0 {
		return nil
	}
	return s.dev.do(func(rt *cudart) error {
		return rt.check(rt.memcpyAsync(uintptr(dst), uintptr(src), uint64(n), cudaMemcpyDeviceToDevice, s.h), "cudaMemcpyAsync(DtoD, %d)", n)
	})
}

// Memset queues setting n bytes at dst to the byte value v on s (cudaMemsetAsync).
func (s *Stream) Memset(dst DevicePtr, v byte, n int) error {
	if n <= 0 {
		return nil
	}
	return s.dev.do(func(rt *cudart) error {
		return rt.check(rt.memsetAsync(uintptr(dst), int32(v), uint64(n), s.h), "cudaMemsetAsync(%d)", n)
	})
}
