package gpusearch

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/embedd/embedd/device"
	"github.com/embedd/embedd/gpu"
)

// noCUDA skips the test where CUDA loads: it tests the fallback.
func noCUDA(t *testing.T) error {
	t.Helper()
	lib, err := gpu.Load()
	if err == nil {
		_ = lib.Close()
		t.Skip("CUDA loads here: the fallback is not reachable")
	}
	return err
}

func TestSelectAutoFallsBackToCPU(t *testing.T) {
	noCUDA(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	b, closeB, err := Select(device.Device{Kind: device.Auto}, log)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "cpu" {
		t.Fatalf("auto without CUDA chose %q", b.Name())
	}
	if err := closeB(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "no usable GPU") || !strings.Contains(out, "CUDA not available") || !strings.Contains(out, "backend=cpu") {
		t.Fatalf("log does not say why the CPU runs:\n%s", out)
	}
}

func TestSelectCUDAFailsWithoutCUDA(t *testing.T) {
	noCUDA(t)
	_, _, err := Select(device.Device{Kind: device.CUDA, Ordinal: 1}, slog.New(slog.DiscardHandler))
	if !errors.Is(err, gpu.ErrNoCUDA) || !strings.Contains(err.Error(), "search device cuda:1") {
		t.Fatalf("Select(cuda:1) without CUDA: %v", err)
	}
}

func TestSelectCPU(t *testing.T) {
	var logs bytes.Buffer
	b, closeB, err := Select(device.Device{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || b.Name() != "cpu" || closeB() != nil {
		t.Fatalf("cpu: %v %v", b, err)
	}
	if !strings.Contains(logs.String(), "backend=cpu") {
		t.Fatalf("not logged: %s", logs.String())
	}
}
