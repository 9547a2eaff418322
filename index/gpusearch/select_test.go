package gpusearch

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/embedd/embedd/gpu"
)

func TestParseDevice(t *testing.T) {
	for in, want := range map[string]Device{
		"": {Kind: "cpu"}, "cpu": {Kind: "cpu"}, "auto": {Kind: "auto"},
		"cuda": {Kind: "cuda"}, "cuda:0": {Kind: "cuda"}, "cuda:3": {Kind: "cuda", Ordinal: 3},
	} {
		got, err := ParseDevice(in)
		if err != nil || got != want {
			t.Errorf("ParseDevice(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cuda:01", "cuda:1 ", "tpu"} {
		if _, err := ParseDevice(in); err == nil {
			t.Errorf("ParseDevice(%q) accepted", in)
		}
	}
	if s := (Device{Kind: "cuda", Ordinal: 2}).String(); s != "cuda:2" {
		t.Errorf("String = %q", s)
	}
}

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
	b, closeB, err := Select(Device{Kind: "auto"}, log)
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
	_, _, err := Select(Device{Kind: "cuda", Ordinal: 1}, slog.New(slog.DiscardHandler))
	if !errors.Is(err, gpu.ErrNoCUDA) || !strings.Contains(err.Error(), "search device cuda:1") {
		t.Fatalf("Select(cuda:1) without CUDA: %v", err)
	}
}

func TestSelectCPU(t *testing.T) {
	var logs bytes.Buffer
	b, closeB, err := Select(Device{Kind: "cpu"}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || b.Name() != "cpu" || closeB() != nil {
		t.Fatalf("cpu: %v %v", b, err)
	}
	if !strings.Contains(logs.String(), "backend=cpu") {
		t.Fatalf("not logged: %s", logs.String())
	}
}
