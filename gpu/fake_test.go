//go:build linux

package gpu

import (
	"errors"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The tests in this file run the package's purego bindings against
// testdata/fakecuda.c, a fake CUDA runtime, cuBLAS and NVRTC built with gcc (they
// skip without gcc). They check what the CPU can check: symbols resolve, arguments
// arrive in the order and types of the real C prototypes (including dim3 by value,
// float pointers and 19-argument calls), the device thread's current device, every
// object's release, and the top-k launches' parameters. They do not check CUDA.

// fake holds the fake library's test helpers.
type fake struct {
	launchCount func() int32
	launchReset func()
	launch      func(i int32, out *[16]int64) int32
	live        func() int64 // live handles·1e6 + registered ranges
}

// withFake builds the fake library, points Load's name lists at it for the test,
// and returns the loaded Lib (closed at cleanup) and the helpers.
func withFake(t *testing.T) (*Lib, *fake) {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("no gcc to build the fake CUDA library: %v", err)
	}
	so := filepath.Join(t.TempDir(), "libfakecuda.so")
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-O1", "-o", so, "testdata/fakecuda.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	saved := [3][]string{cudartNames, cublasNames, nvrtcNames}
	cudartNames, cublasNames, nvrtcNames = []string{"libcudart-missing.so", so}, []string{so}, []string{so}
	t.Cleanup(func() { cudartNames, cublasNames, nvrtcNames = saved[0], saved[1], saved[2] })

	h, err := purego.Dlopen(so, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = purego.Dlclose(h) })
	f := &fake{}
	for name, fp := range map[string]any{
		"fake_launch_count": &f.launchCount, "fake_launch_reset": &f.launchReset,
		"fake_launch": &f.launch, "fake_live": &f.live,
	} {
		purego.RegisterLibFunc(fp, h, name)
	}
	l, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		if err := l.Close(); err != nil {
			t.Error("second Close:", err)
		}
	})
	return l, f
}

func TestFakeLoadDevices(t *testing.T) {
	l, _ := withFake(t)
	if got := l.Libraries(); len(got) != 3 {
		t.Errorf("Libraries() = %v", got)
	}
	infos, err := l.Devices()
	must(t, err)
	want := DeviceInfo{Ordinal: 0, PCIBusID: "0000:FA:KE.0", Major: 9, Minor: 0, SMs: 132, TotalBytes: 80 << 30, FreeBytes: 80 << 30}
	if len(infos) != 1 || infos[0] != want {
		t.Errorf("Devices() = %+v, want [%+v]", infos, want)
	}
	if _, err := l.Open(1); err == nil {
		t.Error("Open(1) of one device succeeded")
	}
	// The fake's cudaMemGetInfo fails on a thread without a current device: on
	// this goroutine's thread it must fail, on the device's thread succeed.
	var free, total uint64
	if err := l.rt.check(l.rt.memGetInfo(&free, &total), "cudaMemGetInfo"); err == nil || !strings.Contains(err.Error(), "cudaErrorInvalidDevice") {
		t.Errorf("cudaMemGetInfo off the device thread: %v", err)
	}
	d := keep(l.Open(0))(t)
	if _, total, err := d.MemGetInfo(); err != nil || total != 80<<30 {
		t.Errorf("MemGetInfo = %d, %v", total, err)
	}
	_, err = NewDeviceBuffer(d, 1<<50)
	var ce *Error
	if !errors.As(err, &ce) || ce.Name != "cudaErrorMemoryAllocation" || ce.Text != "out of memory" {
		t.Errorf("huge cudaMalloc: %v", err)
	}
}

func TestFakeNoLeak(t *testing.T) {
	l, f := withFake(t)
	d := keep(l.Open(0))(t)
	before, _, err := d.MemGetInfo()
	must(t, err)
	for range 100 {
		b, err := NewDeviceBuffer(d, 1<<20)
		must(t, err)
		p, err := NewPinnedBuffer(d, 4096)
		must(t, err)
		s, err := NewStream(d)
		must(t, err)
		e, err := NewEvent(d)
		must(t, err)
		h, err := NewBLAS(s)
		must(t, err)
		r, err := HostRegister(d, p.Bytes(), true)
		must(t, err)
		tk, err := NewTopK(d)
		must(t, err)
		for _, c := range []interface{ Close() error }{tk, r, h, e, s, p, b} {
			must(t, c.Close())
			must(t, c.Close())
		}
	}
	after, _, err := d.MemGetInfo()
	must(t, err)
	if before != after || f.live() != 0 {
		t.Errorf("free %d → %d, live handles·1e6+registered %d", before, after, f.live())
	}
	must(t, d.Close())
	if _, _, err := d.MemGetInfo(); err == nil {
		t.Error("MemGetInfo on a closed device succeeded")
	}
}

func TestFakeCopiesEvents(t *testing.T) {
	l, _ := withFake(t)
	d := keep(l.Open(0))(t)
	s := keep(NewStream(d))(t)
	src := keep(NewPinnedBuffer(d, 1000))(t)
	dst := keep(NewPinnedBuffer(d, 1000))(t)
	a := keep(NewDeviceBuffer(d, 1000))(t)
	b := keep(NewDeviceBuffer(d, 1000))(t)
	e0 := keep(NewEvent(d))(t)
	e1 := keep(NewEvent(d))(t)
	for i := range src.Bytes() {
		src.Bytes()[i] = byte(i)
	}
	must(t, e0.Record(s))
	must(t, s.CopyHtoD(a.Ptr(), src.Bytes()))
	must(t, s.Memset(b.Ptr(), 0xff, 1000))
	must(t, s.CopyDtoD(b.Ptr().Add(10), a.Ptr(), 990))
	must(t, s.CopyDtoH(dst.Bytes(), b.Ptr()))
	must(t, e1.Record(s))
	must(t, s.WaitEvent(e1))
	must(t, s.Synchronize())
	must(t, e1.Synchronize())
	for i, v := range dst.Bytes() {
		want := byte(0xff)
		if i >= 10 {
			want = byte(i - 10)
		}
		if v != want {
			t.Fatalf("byte %d = %d, want %d", i, v, want)
		}
	}
	if el, err := Elapsed(e0, e1); err != nil || el.Microseconds() != 1500 {
		t.Errorf("Elapsed = %v, %v; want 1.5ms", el, err)
	}
}

// TestFakeGemm runs Sgemm and GemmF16 through the fake, which computes the
// column-major GEMM on the CPU from the arguments it receives.
func TestFakeGemm(t *testing.T) {
	l, _ := withFake(t)
	d := keep(l.Open(0))(t)
	s := keep(NewStream(d))(t)
	h := keep(NewBLAS(s))(t)
	const n, q, dim = 37, 5, 24
	rng := rand.New(rand.NewPCG(9, 10))
	host := keep(NewPinnedBuffer(d, 4*(n*dim+q*dim+q*n)))(t)
	hf := host.Float32s()
	m, qs, got := hf[:n*dim], hf[n*dim:n*dim+q*dim], hf[n*dim+q*dim:]
	for i := range m {
		m[i] = float32(rng.IntN(257)-128) / 128
	}
	for i := range qs {
		qs[i] = float32(rng.IntN(257)-128) / 128
	}
	want := make([]float32, q*n)
	for qi := range q {
		for r := range n {
			var sum float64
			for x := range dim {
				sum += float64(qs[qi*dim+x]) * float64(m[r*dim+x])
			}
			want[qi*n+r] = 2 * float32(sum)
		}
	}
	// The fake's "device memory" is host memory: pass the pinned buffer directly.
	base := DevicePtr(unsafe.Pointer(&hf[0]))
	mP, qP, sP := base, base.Add(4*n*dim), base.Add(4*(n*dim+q*dim))
	must(t, h.Sgemm(ScoresGemm(n, q, dim), 2, mP, qP, 0, sP))
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-4 {
			t.Fatalf("Sgemm S[%d][%d] = %v, want %v", i/n, i%n, got[i], want[i])
		}
	}
	halves := make([]uint16, n*dim+q*dim)
	for i, v := range hf[:n*dim+q*dim] {
		halves[i] = f16(v)
	}
	hb := unsafe.Slice((*byte)(unsafe.Pointer(&hf[0])), 2*len(halves))
	copy(hb, unsafe.Slice((*byte)(unsafe.Pointer(&halves[0])), 2*len(halves)))
	clear(got)
	must(t, h.GemmF16(ScoresGemm(n, q, dim), 2, base, base.Add(2*n*dim), 0, sP))
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-3 {
			t.Fatalf("GemmF16 S[%d][%d] = %v, want %v", i/n, i%n, got[i], want[i])
		}
	}
	if err := h.Sgemm(Gemm{M: 1, N: 1, K: 1, LDA: 0, LDB: 1, LDC: 1}, 1, mP, qP, 0, sP); err == nil {
		t.Error("Sgemm with lda 0 succeeded")
	}
}

// TestFakeTopK compiles and loads the kernel through the fake and checks that the
// launches it receives carry topkLaunches' grid, block, shared memory and arguments.
func TestFakeTopK(t *testing.T) {
	l, f := withFake(t)
	d := keep(l.Open(0))(t)
	s := keep(NewStream(d))(t)
	tk := keep(NewTopK(d))(t)
	const q, n, k = 3, 100_000, 2048
	scores, outV, outI, scratch := DevicePtr(0x1000), DevicePtr(0x2000_0000), DevicePtr(0x3000_0000), DevicePtr(0x4000_0000)
	f.launchReset()
	must(t, tk.Run(s, scores, q, n, k, outV, outI, scratch))
	want := topkLaunches(scores, q, n, k, outV, outI, scratch)
	if int(f.launchCount()) != len(want) {
		t.Fatalf("%d launches, want %d", f.launchCount(), len(want))
	}
	for i, w := range want {
		var got [16]int64
		final := f.launch(int32(i), &got)
		a := w.args
		exp := [16]int64{int64(w.grid.X), int64(w.grid.Y), int64(w.grid.Z), int64(w.block.X), int64(w.block.Y), int64(w.block.Z), int64(w.shared),
			int64(a.inVals), int64(a.inIdx), int64(a.len), a.inStride, int64(a.k), int64(a.chunk), int64(a.outVals), int64(a.outIdx), a.outStride}
		if got != exp || final != a.final {
			t.Errorf("launch %d: got %v final %d, want %v final %d", i, got, final, exp, a.final)
		}
	}
	for _, bad := range [][3]int{{0, n, k}, {q, 0, k}, {q, n, 0}, {q, n, MaxK + 1}, {maxGridY + 1, n, k}} {
		if err := tk.Run(s, scores, bad[0], bad[1], bad[2], outV, outI, scratch); err == nil {
			t.Errorf("Run(q=%d, n=%d, k=%d) succeeded", bad[0], bad[1], bad[2])
		}
	}
}

func TestFakeCompileError(t *testing.T) {
	l, _ := withFake(t)
	_, err := l.CompilePTX("#error nope", "bad.cu", 9, 0)
	var ce *Error
	if !errors.As(err, &ce) || ce.Name != "NVRTC_ERROR_COMPILATION" || !strings.Contains(ce.Log, "error: fake") {
		t.Fatalf("CompilePTX error = %v", err)
	}
	if _, err := l.CompilePTX("ok", "ok.cu", 8, 0); err == nil {
		t.Error("compile for compute_80 succeeded in a fake that only accepts compute_90")
	}
	ptx, err := l.CompilePTX(topkSource, "topk.cu", 9, 0)
	if err != nil || string(ptx) != "// fake ptx\x00" {
		t.Errorf("CompilePTX = %q, %v", ptx, err)
	}
}

// TestFakePartialLoad checks Load's failure after the runtime opened (cuBLAS
// missing: everything opened is closed, ErrNoCUDA names the file) and a Lib without
// NVRTC (loads; kernels fail with ErrNoCUDA).
func TestFakePartialLoad(t *testing.T) {
	l, _ := withFake(t)
	so := l.Libraries()[0]
	cublasNames = []string{"libcublas-missing.so"}
	l2, err := Load()
	if l2 != nil || !errors.Is(err, ErrNoCUDA) || !strings.Contains(err.Error(), "libcublas-missing.so") {
		t.Fatalf("Load without cuBLAS = %v, %v", l2, err)
	}
	cublasNames, nvrtcNames = []string{so}, []string{"libnvrtc-missing.so"}
	l3, err := Load()
	must(t, err)
	defer func() { must(t, l3.Close()) }()
	d, err := l3.Open(0)
	must(t, err)
	defer func() { must(t, d.Close()) }()
	if _, err := NewTopK(d); !errors.Is(err, ErrNoCUDA) || !strings.Contains(err.Error(), "libnvrtc-missing.so") {
		t.Errorf("NewTopK without NVRTC: %v", err)
	}
}
