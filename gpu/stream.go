package gpu

import (
	"errors"
	"time"
)

// Stream is a CUDA stream (created non-blocking: it does not synchronize with the
// legacy default stream).
type Stream struct {
	dev *Device
	h   uintptr
}

// NewStream creates a stream on d. The caller frees it with Close; d must outlive it.
func NewStream(d *Device) (*Stream, error) {
	s := &Stream{dev: d}
	err := d.do(func(rt *cudart) error {
		return rt.check(rt.streamCreateWithFlags(&s.h, cudaStreamNonBlocking), "cudaStreamCreateWithFlags")
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Synchronize waits until all work queued on s is done (cudaStreamSynchronize).
func (s *Stream) Synchronize() error {
	return s.dev.do(func(rt *cudart) error {
		return rt.check(rt.streamSynchronize(s.h), "cudaStreamSynchronize")
	})
}

// WaitEvent makes later work on s wait for e (cudaStreamWaitEvent).
func (s *Stream) WaitEvent(e *Event) error {
	return s.dev.do(func(rt *cudart) error {
		return rt.check(rt.streamWaitEvent(s.h, e.h, 0), "cudaStreamWaitEvent")
	})
}

// Close destroys the stream; it is nil-safe and idempotent. Work already queued
// completes (cudaStreamDestroy does not wait for it, the device does).
func (s *Stream) Close() error {
	if s == nil || s.h == 0 {
		return nil
	}
	h := s.h
	s.h = 0
	return s.dev.do(func(rt *cudart) error {
		return rt.check(rt.streamDestroy(h), "cudaStreamDestroy")
	})
}

// Event is a CUDA event with timing enabled.
type Event struct {
	dev *Device
	h   uintptr
}

// NewEvent creates an event on d. The caller frees it with Close; d must outlive it.
func NewEvent(d *Device) (*Event, error) {
	e := &Event{dev: d}
	err := d.do(func(rt *cudart) error {
		return rt.check(rt.eventCreateWithFlags(&e.h, cudaEventDefault), "cudaEventCreateWithFlags")
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Record records e on s (cudaEventRecord).
func (e *Event) Record(s *Stream) error {
	return e.dev.do(func(rt *cudart) error {
		return rt.check(rt.eventRecord(e.h, s.h), "cudaEventRecord")
	})
}

// Synchronize waits until e has completed (cudaEventSynchronize).
func (e *Event) Synchronize() error {
	return e.dev.do(func(rt *cudart) error {
		return rt.check(rt.eventSynchronize(e.h), "cudaEventSynchronize")
	})
}

// Elapsed returns the time between two completed events (cudaEventElapsedTime,
// resolution about 0.5 µs).
func Elapsed(start, end *Event) (time.Duration, error) {
	if start == nil || end == nil || start.dev != end.dev {
		return 0, errors.New("embedd/gpu: Elapsed needs two events of the same device")
	}
	var ms float32
	err := start.dev.do(func(rt *cudart) error {
		return rt.check(rt.eventElapsedTime(&ms, start.h, end.h), "cudaEventElapsedTime")
	})
	return time.Duration(float64(ms) * float64(time.Millisecond)), err
}

// Close destroys the event; it is nil-safe and idempotent.
func (e *Event) Close() error {
	if e == nil || e.h == 0 {
		return nil
	}
	h := e.h
	e.h = 0
	return e.dev.do(func(rt *cudart) error {
		return rt.check(rt.eventDestroy(h), "cudaEventDestroy")
	})
}
