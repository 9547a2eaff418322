package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// errClosed is returned by calls on a closed Device.
var errClosed = errors.New("embedd/gpu: device is closed")

// DeviceInfo describes one CUDA device.
type DeviceInfo struct {
	Ordinal      int    // CUDA runtime ordinal (after CUDA_VISIBLE_DEVICES)
	PCIBusID     string // e.g. "0000:1B:00.0"; the runtime API has no struct-free name call
	Major, Minor int    // compute capability
	SMs          int    // multiprocessor count
	TotalBytes   uint64 // device memory
	FreeBytes    uint64 // device memory free when Devices ran
}

// onThread runs fn on a fresh goroutine locked to its OS thread, with ordinal made
// the thread's current device. The goroutine exits locked, so the thread, whose
// CUDA current device was changed, is discarded rather than reused by Go.
func (l *Lib) onThread(ordinal int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := l.rt.check(l.rt.setDevice(int32(ordinal)), "cudaSetDevice(%d)", ordinal); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	return <-done
}

// Devices lists the CUDA devices. Reading free memory makes each device's primary
// context current, which the CUDA runtime creates on first use (it costs device
// memory until the process exits).
func (l *Lib) Devices() ([]DeviceInfo, error) {
	if l == nil || l.closed {
		return nil, errors.New("embedd/gpu: Devices on a closed Lib")
	}
	var n int32
	if err := l.rt.check(l.rt.getDeviceCount(&n), "cudaGetDeviceCount"); err != nil {
		return nil, err
	}
	infos := make([]DeviceInfo, 0, n)
	for i := range int(n) {
		v, err := l.rt.attributes(i, cudaDevAttrComputeCapabilityMajor, cudaDevAttrComputeCapabilityMinor, cudaDevAttrMultiProcessorCount)
		if err != nil {
			return nil, err
		}
		info := DeviceInfo{Ordinal: i, Major: v[0], Minor: v[1], SMs: v[2]}
		var bus [32]byte
		if err := l.rt.check(l.rt.deviceGetPCIBusID(unsafe.Pointer(&bus[0]), int32(len(bus)), int32(i)), "cudaDeviceGetPCIBusId(%d)", i); err != nil {
			return nil, err
		}
		if j := bytes.IndexByte(bus[:], 0); j >= 0 {
			info.PCIBusID = string(bus[:j])
		}
		err = l.onThread(i, func() error {
			var free, total uint64
			err := l.rt.check(l.rt.memGetInfo(&free, &total), "cudaMemGetInfo")
			info.FreeBytes, info.TotalBytes = free, total
			return err
		})
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// Device is one CUDA device with the OS thread that makes its CUDA calls (see the
// package doc, Thread model). Its methods are safe for concurrent use.
type Device struct {
	lib     *Lib
	ordinal int
	work    chan func()   // closures run on the locked thread
	quit    chan struct{} // closed by Close: the thread returns
	stopped chan struct{} // closed when the thread has returned

	mu     sync.Mutex // guards closed
	closed bool
}

// Open starts the device's locked thread and makes ordinal its current device.
// The caller frees the result with Close after closing every object made from it;
// l must outlive it.
func (l *Lib) Open(ordinal int) (*Device, error) {
	if l == nil || l.closed {
		return nil, errors.New("embedd/gpu: Open on a closed Lib")
	}
	var n int32
	if err := l.rt.check(l.rt.getDeviceCount(&n), "cudaGetDeviceCount"); err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= int(n) {
		return nil, fmt.Errorf("embedd/gpu: device ordinal %d is not in [0, %d)", ordinal, n)
	}
	d := &Device{
		lib: l, ordinal: ordinal,
		work: make(chan func()), quit: make(chan struct{}), stopped: make(chan struct{}),
	}
	started := make(chan error, 1)
	go d.loop(started)
	if err := <-started; err != nil {
		<-d.stopped
		return nil, err
	}
	return d, nil
}

// loop is the device's thread: it stays locked (and exits locked, so the thread is
// discarded) and runs closures until quit is closed.
func (d *Device) loop(started chan<- error) {
	defer close(d.stopped)
	runtime.LockOSThread()
	rt := &d.lib.rt
	if err := rt.check(rt.setDevice(int32(d.ordinal)), "cudaSetDevice(%d)", d.ordinal); err != nil {
		started <- err
		return
	}
	started <- nil
	for {
		select {
		case fn := <-d.work:
			fn()
		case <-d.quit:
			return
		}
	}
}

// do runs fn on the device's thread and returns its error. A panic in fn is
// returned as an error so the thread survives.
func (d *Device) do(fn func(rt *cudart) error) (err error) {
	if d == nil || d.quit == nil {
		return errClosed
	}
	res := make(chan error, 1)
	call := func() {
		defer func() {
			if p := recover(); p != nil {
				res <- fmt.Errorf("embedd/gpu: panic on device thread: %v", p)
			}
		}()
		res <- fn(&d.lib.rt)
	}
	select {
	case d.work <- call:
		return <-res
	case <-d.quit:
		return errClosed
	}
}

// attributes returns device ordinal's attributes attrs (cudaDeviceGetAttribute), in
// order.
func (r *cudart) attributes(ordinal int, attrs ...int32) ([]int, error) {
	vals := make([]int, len(attrs))
	for i, a := range attrs {
		var v int32
		if err := r.check(r.deviceGetAttribute(&v, a, int32(ordinal)), "cudaDeviceGetAttribute(%d, %d)", a, ordinal); err != nil {
			return nil, err
		}
		vals[i] = int(v)
	}
	return vals, nil
}

// Ordinal returns the device's CUDA ordinal.
func (d *Device) Ordinal() int { return d.ordinal }

// ComputeCapability returns the device's compute capability (e.g. 9, 0 on an H100).
func (d *Device) ComputeCapability() (major, minor int, err error) {
	err = d.do(func(rt *cudart) error {
		v, err := rt.attributes(d.ordinal, cudaDevAttrComputeCapabilityMajor, cudaDevAttrComputeCapabilityMinor)
		if err == nil {
			major, minor = v[0], v[1]
		}
		return err
	})
	return major, minor, err
}

// MemGetInfo returns the device's free and total memory in bytes (cudaMemGetInfo).
func (d *Device) MemGetInfo() (free, total uint64, err error) {
	err = d.do(func(rt *cudart) error {
		return rt.check(rt.memGetInfo(&free, &total), "cudaMemGetInfo")
	})
	return free, total, err
}

// Synchronize waits for all work on the device (cudaDeviceSynchronize).
func (d *Device) Synchronize() error {
	return d.do(func(rt *cudart) error {
		return rt.check(rt.deviceSynchronize(), "cudaDeviceSynchronize")
	})
}

// Close stops the device's thread. It is nil-safe and idempotent. Objects made from
// d must be closed first: afterwards their calls fail with an error. It does not
// reset the device (other Devices may share its primary context).
func (d *Device) Close() error {
	if d == nil || d.quit == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	close(d.quit)
	<-d.stopped
	return nil
}
