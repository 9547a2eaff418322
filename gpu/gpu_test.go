//go:build linux

package gpu

import (
	"math"
	"math/rand/v2"
	"syscall"
	"testing"
	"unsafe"
)

// These tests need a CUDA device; each skips with the reason where there is none.
// On the GPU machine: go test -c -o .gpu/bin/gpu.test ./gpu, then
// LD_LIBRARY_PATH=/usr/local/cuda/lib64 ./gpu.test -test.run GPU -test.v

// needGPU loads CUDA and opens device 0, or skips the test with the reason.
func needGPU(t *testing.T) (*Lib, *Device) {
	t.Helper()
	l, err := Load()
	if err != nil {
		t.Skipf("no CUDA: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	infos, err := l.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) == 0 {
		t.Skip("no CUDA: no devices")
	}
	d, err := l.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return l, d
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// keep fails t when err is set and otherwise closes v when t ends:
// d := keep(l.Open(0))(t).
func keep[T interface{ Close() error }](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		must(t, err)
		closeLater(t, v)
		return v
	}
}

// closeLater closes c when the test ends, reporting its error.
func closeLater(t *testing.T, c interface{ Close() error }) {
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
}

func TestGPUDevices(t *testing.T) {
	l, _ := needGPU(t)
	infos, err := l.Devices()
	must(t, err)
	for _, in := range infos {
		t.Logf("%+v (libraries %v)", in, l.Libraries())
		if in.TotalBytes == 0 || in.FreeBytes > in.TotalBytes || in.Major < 5 || in.SMs == 0 {
			t.Errorf("implausible device info %+v", in)
		}
	}
}

// TestGPUAllocFreeNoLeak checks that device memory in use is the same before and
// after 1,000 create/close cycles of a buffer, a stream, an event and a BLAS handle.
func TestGPUAllocFreeNoLeak(t *testing.T) {
	_, d := needGPU(t)
	cycle := func() {
		b, err := NewDeviceBuffer(d, 4<<20)
		must(t, err)
		s, err := NewStream(d)
		must(t, err)
		e, err := NewEvent(d)
		must(t, err)
		h, err := NewBLAS(s)
		must(t, err)
		must(t, h.Close())
		must(t, e.Close())
		must(t, s.Close())
		must(t, b.Close())
	}
	cycle() // first use sets up the context and cuBLAS's workspace pools
	must(t, d.Synchronize())
	before, total, err := d.MemGetInfo()
	must(t, err)
	for range 1000 {
		cycle()
	}
	must(t, d.Synchronize())
	after, _, err := d.MemGetInfo()
	must(t, err)
	t.Logf("free before %d, after %d of %d", before, after, total)
	if before != after {
		t.Errorf("device memory free changed by %d bytes over 1,000 cycles", int64(after)-int64(before))
	}
}

// TestGPUCopiesRoundTrip copies pinned → device → device → pinned, and registered
// (mmap'd) memory → device → pinned, and times the first with events.
func TestGPUCopiesRoundTrip(t *testing.T) {
	_, d := needGPU(t)
	const size = 8 << 20
	s := keep(NewStream(d))(t)
	src := keep(NewPinnedBuffer(d, size))(t)
	dst := keep(NewPinnedBuffer(d, size))(t)
	a := keep(NewDeviceBuffer(d, size))(t)
	b := keep(NewDeviceBuffer(d, size))(t)
	e0 := keep(NewEvent(d))(t)
	e1 := keep(NewEvent(d))(t)

	for i := range src.Bytes() {
		src.Bytes()[i] = byte(i*7 + 3)
	}
	must(t, e0.Record(s))
	must(t, s.CopyHtoD(a.Ptr(), src.Bytes()))
	must(t, e1.Record(s))
	must(t, s.CopyDtoD(b.Ptr(), a.Ptr(), size))
	must(t, s.CopyDtoH(dst.Bytes(), b.Ptr()))
	must(t, s.Synchronize())
	must(t, e1.Synchronize())
	el, err := Elapsed(e0, e1)
	must(t, err)
	t.Logf("pinned HtoD %d MiB in %v (%.1f GB/s)", size>>20, el, float64(size)/el.Seconds()/1e9)
	for i, v := range dst.Bytes() {
		if v != byte(i*7+3) {
			t.Fatalf("pinned round trip: byte %d = %d", i, v)
		}
	}

	mm, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	must(t, err)
	t.Cleanup(func() { _ = syscall.Munmap(mm) }) // runs after the Registered's Close below
	for i := range mm {
		mm[i] = byte(i*5 + 1)
	}
	r := keep(HostRegister(d, mm, true))(t) // Bytes: mm, or a pinned copy where it cannot be registered
	must(t, s.Memset(a.Ptr(), 0, size))
	must(t, s.CopyHtoD(a.Ptr(), r.Bytes()))
	must(t, s.CopyDtoH(dst.Bytes(), a.Ptr()))
	must(t, s.Synchronize())
	for i, v := range dst.Bytes() {
		if v != byte(i*5+1) {
			t.Fatalf("registered round trip: byte %d = %d", i, v)
		}
	}
}

// f16 converts a float32 that fp16 represents exactly (normal or zero) to its bits.
func f16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	if b&0x7fffffff == 0 {
		return sign
	}
	exp := int(b>>23&0xff) - 127 + 15
	return sign | uint16(exp)<<10 | uint16(b>>13&0x3ff)
}

// TestGPUGemm checks Sgemm (ScoresGemm) against the CPU within 1e-4 and GemmF16 on
// fp16-exact data within 1e-3.
func TestGPUGemm(t *testing.T) {
	_, d := needGPU(t)
	const n, q, dim = 3001, 17, 384
	rng := rand.New(rand.NewPCG(5, 6))
	m := make([]float32, n*dim)
	qs := make([]float32, q*dim)
	for i := range m {
		m[i] = float32(rng.IntN(2049)-1024) / 1024 // exact in fp16
	}
	for i := range qs {
		qs[i] = float32(rng.IntN(2049)-1024) / 1024
	}
	want := make([]float32, q*n)
	refGemm(ScoresGemm(n, q, dim), 1, m, qs, 0, want)

	s := keep(NewStream(d))(t)
	h := keep(NewBLAS(s))(t)
	host := keep(NewPinnedBuffer(d, 4*(n*dim+q*dim+q*n)))(t)
	dev := keep(NewDeviceBuffer(d, 4*(n*dim+q*dim+q*n)))(t)
	hf := host.Float32s()
	copy(hf, m)
	copy(hf[n*dim:], qs)
	mP, qP, sP := dev.Ptr(), dev.Ptr().Add(4*n*dim), dev.Ptr().Add(4*(n*dim+q*dim))
	must(t, s.CopyHtoD(mP, host.Bytes()[:4*(n*dim+q*dim)]))
	must(t, h.Sgemm(ScoresGemm(n, q, dim), 1, mP, qP, 0, sP))
	out := host.Bytes()[4*(n*dim+q*dim):]
	must(t, s.CopyDtoH(out, sP))
	must(t, s.Synchronize())
	got := hf[n*dim+q*dim:]
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-4 {
			t.Fatalf("Sgemm S[%d][%d] = %v, want %v", i/n, i%n, got[i], want[i])
		}
	}

	// fp16 storage: the same data as halves.
	hb := host.Bytes()
	for i, v := range m {
		*(*uint16)(unsafe.Pointer(&hb[2*i])) = f16(v)
	}
	for i, v := range qs {
		*(*uint16)(unsafe.Pointer(&hb[2*(n*dim+i)])) = f16(v)
	}
	mH, qH := dev.Ptr(), dev.Ptr().Add(2*n*dim)
	must(t, s.CopyHtoD(mH, hb[:2*(n*dim+q*dim)]))
	must(t, h.GemmF16(ScoresGemm(n, q, dim), 1, mH, qH, 0, sP))
	must(t, s.CopyDtoH(out, sP))
	must(t, s.Synchronize())
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-3 {
			t.Fatalf("GemmF16 S[%d][%d] = %v, want %v", i/n, i%n, got[i], want[i])
		}
	}
}

// TestGPUTopK checks the kernel against sorting, on data with ties, k = 1, 10, 2048.
func TestGPUTopK(t *testing.T) {
	_, d := needGPU(t)
	tk := keep(NewTopK(d))(t)
	s := keep(NewStream(d))(t)
	rng := rand.New(rand.NewPCG(7, 8))
	for _, c := range []struct{ q, n, k, levels int }{
		{3, 100_003, 1, 0}, {4, 100_003, 10, 50}, {2, 100_003, 2048, 0}, {2, 9999, 2048, 3}, {1, 50, 100, 0},
	} {
		scores := make([]float32, c.q*c.n)
		for i := range scores {
			if c.levels > 0 {
				scores[i] = float32(rng.IntN(c.levels))
			} else {
				scores[i] = rng.Float32()
			}
		}
		scr := TopKScratchBytes(c.q, c.n, c.k)
		in := 4 * c.q * c.n
		outB := 4 * c.q * c.k
		host := keep(NewPinnedBuffer(d, in+2*outB))(t)
		dev := keep(NewDeviceBuffer(d, in+2*outB+scr))(t)
		copy(host.Float32s(), scores)
		must(t, s.CopyHtoD(dev.Ptr(), host.Bytes()[:in]))
		must(t, tk.Run(s, dev.Ptr(), c.q, c.n, c.k, dev.Ptr().Add(in), dev.Ptr().Add(in+outB), dev.Ptr().Add(in+2*outB)))
		must(t, s.CopyDtoH(host.Bytes()[in:], dev.Ptr().Add(in)))
		must(t, s.Synchronize())
		gotV := host.Float32s()[c.q*c.n : c.q*c.n+c.q*c.k]
		gotI := unsafe.Slice((*int32)(unsafe.Pointer(&host.Bytes()[in+outB])), c.q*c.k)
		wantV, wantI := refTopK(scores, c.q, c.n, c.k)
		for i := range wantI {
			if gotI[i] != wantI[i] || gotV[i] != wantV[i] {
				t.Fatalf("%+v: result %d = (%v, %d), want (%v, %d)", c, i, gotV[i], gotI[i], wantV[i], wantI[i])
			}
		}
		must(t, dev.Close())
		must(t, host.Close())
	}
}
