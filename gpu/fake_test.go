//go:build linux

package gpu

import (
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The tests in this file run the package's purego bindings against
// testdata/fakecuda.c, a fake CUDA runtime, cuBLAS and NVRTC built with gcc (they
// skip without gcc). They check what the CPU can check: symbols resolve, arguments
// arrive in the order and types of the real C prototypes (including dim3 by value,
// which the package passes as registers, float pointers and 19-argument calls), the
// choice of CUDA release, optional symbols, fallbacks on device attributes, the
// device thread's current device, every object's release, and the top-k launches'
// parameters and image. They do not check CUDA.

// fake holds the fake library's test helpers.
type fake struct {
	launchCount         func() int32
	launchReset         func()
	launch              func(i int32, out *[16]int64) int32
	live                func() int64 // live handles·1e6 + registered ranges
	setAttr             func(attr, v int32)
	setDeviceCountError func(code int32)
	registerFlags       func() uint32
	libraryImage        func(lib uintptr) unsafe.Pointer
	loadedKind          func() int32 // of the last cudaLibraryLoadData: 1 PTX, 2 cubin
	compiledArch        func() int32 // of the last successful nvrtcCompileProgram
}

// buildFake builds testdata/fakecuda.c with gcc and flags into a shared library
// and returns its path; it skips the test without gcc.
func buildFake(t *testing.T, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("no gcc to build the fake CUDA library: %v", err)
	}
	so := filepath.Join(t.TempDir(), "libfakecuda.so")
	args := append(append([]string{"-shared", "-fPIC", "-O1"}, flags...), "-o", so, "testdata/fakecuda.c")
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return so
}

// openFake opens the fake library so (the instance Load opens too) for its test
// helpers, until the test ends.
func openFake(t *testing.T, so string) *fake {
	t.Helper()
	h, err := purego.Dlopen(so, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = purego.Dlclose(h) })
	f := &fake{}
	for name, fp := range map[string]any{
		"fake_launch_count": &f.launchCount, "fake_launch_reset": &f.launchReset,
		"fake_launch": &f.launch, "fake_live": &f.live,
		"fake_set_attr": &f.setAttr, "fake_set_device_count_error": &f.setDeviceCountError,
		"fake_register_flags": &f.registerFlags, "fake_library_image": &f.libraryImage,
		"fake_loaded_kind": &f.loadedKind, "fake_compiled_arch": &f.compiledArch,
	} {
		purego.RegisterLibFunc(fp, h, name)
	}
	return f
}

// useFake makes Load try sets, in order, until the test ends.
func useFake(t *testing.T, sets ...libSet) {
	saved := cudaMajors
	cudaMajors = sets
	t.Cleanup(func() { cudaMajors = saved })
}

// fakeSet is CUDA major release major with every library in file so.
func fakeSet(major int, so string) libSet {
	return libSet{Major: major, Runtime: so, BLAS: so, NVRTC: so}
}

// loadFake runs Load and closes the Lib (twice) when the test ends.
func loadFake(t *testing.T) *Lib {
	t.Helper()
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
	return l
}

// withFake builds the fake library, points Load at a missing CUDA 13 and at the
// fake as CUDA 12 for the test, and returns the loaded Lib (closed at cleanup)
// and the helpers.
func withFake(t *testing.T) (*Lib, *fake) {
	t.Helper()
	so := buildFake(t)
	f := openFake(t, so)
	useFake(t, libSet{Major: 13, Runtime: "libcudart-missing.so", BLAS: so, NVRTC: so}, fakeSet(12, so))
	return loadFake(t), f
}

func TestFakeLoadDevices(t *testing.T) {
	l, _ := withFake(t)
	if got := l.Libraries(); len(got) != 3 || l.major != 12 {
		t.Errorf("Libraries() = %v, major %d; want the fake's three, CUDA 12", got, l.major)
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
	checkGemm(t, l)
}

// checkGemm runs Sgemm and GemmF16 through the fake l and checks their results.
func checkGemm(t *testing.T, l *Lib) {
	t.Helper()
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
	if kind, arch := f.loadedKind(), f.compiledArch(); kind != 2 || arch != 90 {
		t.Errorf("loaded image kind %d (2: cubin) compiled for %d; want a cubin for sm_90", kind, arch)
	}
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
	if _, err := l.CompilePTX("ok", "ok.cu", 7, 0); err == nil {
		t.Error("compile for compute_70 succeeded in a fake that accepts 75 to 90 only")
	}
	ptx, err := l.CompilePTX(topkSource, "topk.cu", 9, 0)
	if err != nil || string(ptx) != "// fake ptx\x00" {
		t.Errorf("CompilePTX = %q, %v", ptx, err)
	}
}

// TestFakePartialLoad checks Load's failure after the runtime opened (cuBLAS
// missing: everything opened is closed, ErrNoCUDA names the file), the next
// release tried as a whole when one release's cuBLAS is missing, and a Lib without
// NVRTC (loads; kernels fail with ErrNoCUDA).
func TestFakePartialLoad(t *testing.T) {
	_, f := withFake(t)
	so := cudaMajors[1].Runtime
	before := f.live()
	noBLAS := libSet{Major: 13, Runtime: so, BLAS: "libcublas-missing.so", NVRTC: so}
	useFake(t, noBLAS)
	l2, err := Load()
	if l2 != nil || !errors.Is(err, ErrNoCUDA) || !strings.Contains(err.Error(), "libcublas-missing.so") {
		t.Fatalf("Load without cuBLAS = %v, %v", l2, err)
	}
	useFake(t, noBLAS, fakeSet(12, so))
	if l := loadFake(t); l.major != 12 {
		t.Errorf("Load with CUDA 13's cuBLAS missing opened CUDA %d (%v), want 12", l.major, l.Libraries())
	}
	useFake(t, libSet{Major: 12, Runtime: so, BLAS: so, NVRTC: "libnvrtc-missing.so"})
	l3 := loadFake(t)
	d := keep(l3.Open(0))(t)
	if _, err := NewTopK(d); !errors.Is(err, ErrNoCUDA) || !strings.Contains(err.Error(), "libnvrtc-missing.so") {
		t.Errorf("NewTopK without NVRTC: %v", err)
	}
	if f.live() != before {
		t.Errorf("live handles·1e6+registered %d, was %d", f.live(), before)
	}
}

// TestFakeNoLibraryAPI loads a runtime without the cudaLibrary API (before CUDA
// 12.8): Load, devices and cuBLAS work, and only NewTopK fails, saying why.
func TestFakeNoLibraryAPI(t *testing.T) {
	so := buildFake(t, "-DFAKE_NO_LIBRARY_API")
	useFake(t, fakeSet(12, so))
	l := loadFake(t)
	checkGemm(t, l)
	d := keep(l.Open(0))(t)
	_, err := NewTopK(d)
	if !errors.Is(err, ErrNoCUDA) || !strings.Contains(err.Error(), "cudaLibrary") || !strings.Contains(err.Error(), "12.8") {
		t.Fatalf("NewTopK without the cudaLibrary API: %v", err)
	}
	t.Log(err)
}

// TestFakeInsufficientDriver loads a CUDA 13 runtime whose cudaGetDeviceCount
// returns cudaErrorInsufficientDriver (a driver older than the runtime): Load
// falls back to CUDA 12, with cuBLAS and NVRTC of 12; when 12 fails the same way,
// Load fails with ErrNoCUDA giving both reasons.
func TestFakeInsufficientDriver(t *testing.T) {
	so12 := buildFake(t)
	so13 := filepath.Join(t.TempDir(), "libfakecuda13.so") // a copy is a separate instance
	b, err := os.ReadFile(so12)
	must(t, err)
	must(t, os.WriteFile(so13, b, 0o755))
	f13, f12 := openFake(t, so13), openFake(t, so12)
	f13.setDeviceCountError(35)
	useFake(t, fakeSet(13, so13), fakeSet(12, so12))
	l := loadFake(t)
	if got, want := l.Libraries(), []string{so12, so12, so12}; l.major != 12 || !slices.Equal(got, want) {
		t.Errorf("Load opened CUDA %d %v, want 12 %v", l.major, got, want)
	}
	d := keep(l.Open(0))(t)
	keep(NewTopK(d))(t)

	f12.setDeviceCountError(35)
	l2, err := Load()
	if l2 != nil || !errors.Is(err, ErrNoCUDA) || strings.Count(err.Error(), "cudaErrorInsufficientDriver") != 2 ||
		!strings.Contains(err.Error(), "CUDA 13: ") || !strings.Contains(err.Error(), "CUDA 12: ") {
		t.Fatalf("Load with no usable driver = %v, %v", l2, err)
	}
	t.Log(err)
}

// TestFakeHostRegisterFallback checks HostRegister against the device's
// attributes: read-only registration where supported, read-write registration
// without read-only support, a pinned copy without registration support (and an
// error for writable memory), each fallback with a log line.
func TestFakeHostRegisterFallback(t *testing.T) {
	l, f := withFake(t)
	var logs strings.Builder
	l.log = slog.New(slog.NewTextHandler(&logs, nil))
	d := keep(l.Open(0))(t)
	mm, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	must(t, err)
	t.Cleanup(func() { _ = syscall.Munmap(mm) })
	for i := range mm {
		mm[i] = byte(i)
	}
	for _, c := range []struct {
		name           string
		canReg, canRO  int32
		readOnly       bool
		flags          uint32 // cudaHostRegister's, 0: not called
		inPlace, fails bool
		log            string
	}{
		{"read-only", 1, 1, true, 9, true, false, ""},
		{"read-write", 1, 1, false, 1, true, false, ""},
		{"no read-only support", 1, 0, true, 1, true, false, "registering it read-write"},
		{"no registration, read-only", 0, 0, true, 0, false, false, "copying it into pinned memory"},
		{"no registration, writable", 0, 0, false, 0, false, true, ""},
	} {
		logs.Reset()
		f.setAttr(cudaDevAttrHostRegisterSupported, c.canReg)
		f.setAttr(cudaDevAttrHostRegisterReadOnlySupported, c.canRO)
		r, err := HostRegister(d, mm, c.readOnly)
		if c.fails {
			if !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("%s: HostRegister = %v, want errors.ErrUnsupported", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got := r.Bytes()
		registered := f.live()%1_000_000 == 1
		if registered != c.inPlace || (c.inPlace && f.registerFlags() != c.flags) || (&got[0] == &mm[0]) != c.inPlace || !slices.Equal(got, mm) {
			t.Errorf("%s: registered %v with flags %d, Bytes in place %v, same bytes %v; want registered in place %v with flags %d",
				c.name, registered, f.registerFlags(), &got[0] == &mm[0], slices.Equal(got, mm), c.inPlace, c.flags)
		}
		if !strings.Contains(logs.String(), c.log) || (c.log == "") != (logs.Len() == 0) {
			t.Errorf("%s: logged %q, want %q", c.name, logs.String(), c.log)
		}
		must(t, r.Close())
		must(t, r.Close())
		if r.Bytes() != nil || f.live() != 0 {
			t.Errorf("%s: after Close, Bytes %d bytes, live handles·1e6+registered %d", c.name, len(r.Bytes()), f.live())
		}
	}
}

// TestFakeTopKPTXFallback checks that a device newer than NVRTC gets PTX for the
// newest architecture NVRTC knows, and that a device older than all of them is
// refused.
func TestFakeTopKPTXFallback(t *testing.T) {
	l, f := withFake(t)
	d := keep(l.Open(0))(t)
	f.setAttr(cudaDevAttrComputeCapabilityMajor, 10)
	keep(NewTopK(d))(t)
	if kind, arch := f.loadedKind(), f.compiledArch(); kind != 1 || arch != 90 {
		t.Errorf("device 10.0: loaded image kind %d (1: PTX) for %d, want PTX for compute_90", kind, arch)
	}
	f.setAttr(cudaDevAttrComputeCapabilityMajor, 7)
	if _, err := NewTopK(d); err == nil || !strings.Contains(err.Error(), "sm_70") {
		t.Errorf("device 7.0, older than every NVRTC architecture: NewTopK = %v", err)
	}
}

// TestFakeModuleKeepsImage checks that a loaded module holds the very image the
// library was loaded from until Close.
func TestFakeModuleKeepsImage(t *testing.T) {
	l, f := withFake(t)
	d := keep(l.Open(0))(t)
	tk := keep(NewTopK(d))(t)
	if len(tk.mod.image) == 0 || f.libraryImage(tk.mod.h) != unsafe.Pointer(&tk.mod.image[0]) {
		t.Fatalf("module keeps %d bytes at %p; the library was loaded from %p", len(tk.mod.image), unsafe.SliceData(tk.mod.image), f.libraryImage(tk.mod.h))
	}
	m := tk.mod
	must(t, tk.Close())
	if m.image != nil {
		t.Error("closed module still holds its image")
	}
}
