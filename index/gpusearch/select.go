package gpusearch

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/embedd/embedd/device"
	"github.com/embedd/embedd/gpu"
	"github.com/embedd/embedd/index"
)

// Select returns the search backend for d and a function that closes what
// it opened (the Backend, then the CUDA library; it returns nil for the
// CPU). The caller calls it once, after closing every collection that
// uses the backend. "cpu" gives index.CPUBackend; "cuda" fails when CUDA
// does not load or the device does not start, with the reason; "auto"
// falls back to the CPU then and logs why at warn level on log (nil:
// slog.Default()). The backend that runs is logged at info level. opts
// configure the GPU backend (New) and are ignored for the CPU.
func Select(d device.Device, log *slog.Logger, opts ...Option) (index.Backend, func() error, error) {
	if log == nil {
		log = slog.Default()
	}
	noop := func() error { return nil }
	if d.Kind == device.CPU {
		log.Info("embedd: search backend", "backend", "cpu", "search_device", d.String())
		return index.CPUBackend{}, noop, nil
	}
	b, closeAll, err := open(d.Ordinal, opts)
	if err != nil {
		if d.Kind == device.CUDA {
			return nil, nil, fmt.Errorf("embedd/index/gpusearch: search device %s: %w", d, err)
		}
		log.Warn("embedd: search on the CPU: no usable GPU", "search_device", d.String(), "reason", err)
		log.Info("embedd: search backend", "backend", "cpu", "search_device", d.String())
		return index.CPUBackend{}, noop, nil
	}
	log.Info("embedd: search backend", "backend", b.Name(), "search_device", d.String(), "fp16", b.FP16())
	return b, closeAll, nil
}

// open loads CUDA and starts a Backend on device ordinal; the function it
// returns closes both.
func open(ordinal int, opts []Option) (*Backend, func() error, error) {
	lib, err := gpu.Load()
	if err != nil {
		return nil, nil, err
	}
	b, err := New(lib, ordinal, opts...)
	if err != nil {
		return nil, nil, errors.Join(err, lib.Close())
	}
	return b, func() error { return errors.Join(b.Close(), lib.Close()) }, nil
}
