package gpu

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLoadWithoutCUDA checks the CPU-only path: Load fails with ErrNoCUDA and names
// every library file it tried.
func TestLoadWithoutCUDA(t *testing.T) {
	l, err := Load()
	if err == nil {
		t.Cleanup(func() { _ = l.Close() })
		t.Skipf("CUDA is present (%v): the no-CUDA path is not exercised here", l.Libraries())
	}
	if l != nil {
		t.Errorf("Load returned a Lib with error %v", err)
	}
	if !errors.Is(err, ErrNoCUDA) {
		t.Fatalf("Load error %v does not wrap ErrNoCUDA", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "embedd/gpu: ") {
		t.Errorf("error %q lacks the package prefix", msg)
	}
	for _, set := range cudaMajors {
		if !strings.Contains(msg, set.Runtime) {
			t.Errorf("error %q does not name %s", msg, set.Runtime)
		}
	}
	t.Logf("Load: %v", err)
}

// TestCloseNilZeroTwice checks that every Close is nil-safe and idempotent.
func TestCloseNilZeroTwice(t *testing.T) {
	closers := map[string][]interface{ Close() error }{
		"Lib":          {(*Lib)(nil), &Lib{}},
		"Device":       {(*Device)(nil), &Device{}},
		"Stream":       {(*Stream)(nil), &Stream{}},
		"Event":        {(*Event)(nil), &Event{}},
		"DeviceBuffer": {(*DeviceBuffer)(nil), &DeviceBuffer{}},
		"PinnedBuffer": {(*PinnedBuffer)(nil), &PinnedBuffer{}},
		"Registered":   {(*Registered)(nil), &Registered{}},
		"BLAS":         {(*BLAS)(nil), &BLAS{}},
		"module":       {(*module)(nil), &module{}},
		"TopK":         {(*TopK)(nil), &TopK{}},
	}
	for name, cs := range closers {
		for i, c := range cs {
			for range 2 {
				if err := c.Close(); err != nil {
					t.Errorf("%s #%d Close: %v", name, i, err)
				}
			}
		}
	}
}

// TestClosedDeviceCalls checks that calls on a nil or zero Device fail instead of
// blocking.
func TestClosedDeviceCalls(t *testing.T) {
	for _, d := range []*Device{nil, {}} {
		if _, _, err := d.MemGetInfo(); err == nil {
			t.Error("MemGetInfo on a closed device succeeded")
		}
		if _, err := NewDeviceBuffer(d, 16); err == nil {
			t.Error("NewDeviceBuffer on a closed device succeeded")
		}
	}
	var l *Lib
	if _, err := l.Devices(); err == nil {
		t.Error("Devices on a nil Lib succeeded")
	}
	if _, err := l.Open(0); err == nil {
		t.Error("Open on a nil Lib succeeded")
	}
	if _, err := l.CompilePTX("", "x", 9, 0); err == nil {
		t.Error("CompilePTX on a nil Lib succeeded")
	}
}

// TestErrorText checks the shape of CUDA errors.
func TestErrorText(t *testing.T) {
	e := &Error{Op: "cudaMalloc(16)", Code: 2, Name: "cudaErrorMemoryAllocation", Text: "out of memory"}
	want := "embedd/gpu: cudaMalloc(16): cudaErrorMemoryAllocation (2): out of memory"
	if e.Error() != want {
		t.Errorf("got %q, want %q", e.Error(), want)
	}
}

// TestDim3Regs checks the packing of a dim3 argument into the two integer
// registers it occupies on linux/amd64 and linux/arm64: the struct's 16-byte
// padded memory image read as two little-endian words.
func TestDim3Regs(t *testing.T) {
	for _, d := range []dim3{{1, 1, 1}, {0x11223344, 0x55667788, 0x99aabbcc}, {65535, 65535, 64}, {0xffffffff, 0, 0xffffffff}} {
		var mem [16]byte
		binary.LittleEndian.PutUint32(mem[0:], d.X)
		binary.LittleEndian.PutUint32(mem[4:], d.Y)
		binary.LittleEndian.PutUint32(mem[8:], d.Z)
		wantXY, wantZ := binary.LittleEndian.Uint64(mem[0:]), binary.LittleEndian.Uint64(mem[8:])
		if xy, z := d.regs(); xy != wantXY || z != wantZ {
			t.Errorf("%+v.regs() = %#x, %#x; want %#x, %#x", d, xy, z, wantXY, wantZ)
		}
	}
	if unsafe.Sizeof(dim3{}) != 12 || unsafe.Offsetof(dim3{}.Y) != 4 || unsafe.Offsetof(dim3{}.Z) != 8 {
		t.Error("dim3's layout is not CUDA's (three 4-byte fields)")
	}
}
