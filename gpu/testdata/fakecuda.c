// A fake CUDA runtime, cuBLAS and NVRTC for CPU-only tests of the gpu package's
// bindings (fake_test.go builds it with gcc as a shared library). Prototypes are the
// real ones; "device memory" is host memory; GEMMs are computed on the CPU; kernel
// launches are recorded, not run. The calling thread's current device is tracked,
// so calls that need one fail on a thread that never called cudaSetDevice.
// Built with -DFAKE_NO_LIBRARY_API it lacks the cudaLibrary API, as runtimes before
// CUDA 12.8 do. The fake_* functions let a test set device attributes and error
// codes and read back what the library received.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

typedef struct { unsigned int x, y, z; } dim3;

static __thread int current_device = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long long live_bytes, live_handles, registered;
static int device_count_error;        /* returned by cudaGetDeviceCount when set */
static unsigned int register_flags;   /* the flags of the last cudaHostRegister */
static int attrs[256] = {[16] = 132, [75] = 9, [76] = 0, [99] = 1, [113] = 1};

#define TOTAL (80ULL << 30)

/* What NVRTC produces and cudaLibraryLoadData accepts. */
static const char fake_ptx[] = "// fake ptx";
static const char fake_cubin[] = "\177ELF fake cubin";

const char* cudaGetErrorName(int e) {
    switch (e) {
    case 0: return "cudaSuccess";
    case 2: return "cudaErrorMemoryAllocation";
    case 35: return "cudaErrorInsufficientDriver";
    case 101: return "cudaErrorInvalidDevice";
    case 500: return "cudaErrorNotFound";
    case 801: return "cudaErrorNotSupported";
    default: return "cudaErrorUnknown";
    }
}
const char* cudaGetErrorString(int e) { return e == 2 ? "out of memory" : "fake error"; }
int cudaGetDeviceCount(int* n) {
    if (device_count_error) { *n = 0; return device_count_error; }
    *n = 1;
    return 0;
}
int cudaSetDevice(int d) { if (d != 0) return 101; current_device = d; return 0; }
int cudaDeviceGetAttribute(int* v, int attr, int dev) {
    if (dev != 0) return 101;
    if (attr != 16 && attr != 75 && attr != 76 && attr != 99 && attr != 113) return 1;
    *v = attrs[attr];
    return 0;
}
int cudaDeviceGetPCIBusId(char* buf, int len, int dev) {
    if (dev != 0 || len < 13) return 1;
    strcpy(buf, "0000:FA:KE.0");
    return 0;
}
int cudaMemGetInfo(size_t* free_, size_t* total) {
    if (current_device < 0) return 101;
    pthread_mutex_lock(&mu);
    *free_ = TOTAL - live_bytes;
    pthread_mutex_unlock(&mu);
    *total = TOTAL;
    return 0;
}
int cudaDeviceSynchronize(void) { return current_device < 0 ? 101 : 0; }

static void* track(size_t n) {
    size_t* p = malloc(n + 16);
    if (!p) return 0;
    p[0] = n;
    pthread_mutex_lock(&mu); live_bytes += n; pthread_mutex_unlock(&mu);
    return (char*)p + 16;
}
static void untrack(void* q) {
    if (!q) return;
    size_t* p = (size_t*)((char*)q - 16);
    pthread_mutex_lock(&mu); live_bytes -= p[0]; pthread_mutex_unlock(&mu);
    free(p);
}
int cudaMalloc(void** p, size_t n) {
    if (current_device < 0) return 101;
    if (n > TOTAL) return 2;
    *p = track(n);
    return *p ? 0 : 2;
}
int cudaFree(void* p) { untrack(p); return 0; }
int cudaMemsetAsync(void* p, int v, size_t n, void* s) { (void)s; memset(p, v, n); return 0; }
int cudaHostAlloc(void** p, size_t n, unsigned int flags) { (void)flags; *p = malloc(n); return *p ? 0 : 2; }
int cudaFreeHost(void* p) { free(p); return 0; }
int cudaHostRegister(void* p, size_t n, unsigned int flags) {
    (void)p; (void)n;
    if (flags != 9 && flags != 1) return 1; /* portable, optionally read-only */
    if (!attrs[99] || ((flags & 8) && !attrs[113])) return 801;
    pthread_mutex_lock(&mu); registered++; register_flags = flags; pthread_mutex_unlock(&mu);
    return 0;
}
int cudaHostUnregister(void* p) {
    (void)p;
    pthread_mutex_lock(&mu); registered--; pthread_mutex_unlock(&mu);
    return 0;
}
int cudaMemcpyAsync(void* dst, const void* src, size_t n, int kind, void* s) {
    (void)s;
    if (kind < 1 || kind > 3) return 1;
    memcpy(dst, src, n);
    return 0;
}
static void* handle_of(size_t n) {
    pthread_mutex_lock(&mu); live_handles++; pthread_mutex_unlock(&mu);
    return malloc(n);
}
static void* handle(void) { return handle_of(1); }
static int unhandle(void* h) {
    if (!h) return 1;
    pthread_mutex_lock(&mu); live_handles--; pthread_mutex_unlock(&mu);
    free(h);
    return 0;
}
int cudaStreamCreateWithFlags(void** s, unsigned int flags) { if (flags != 1 || current_device < 0) return 1; *s = handle(); return 0; }
int cudaStreamDestroy(void* s) { return unhandle(s); }
int cudaStreamSynchronize(void* s) { return s ? 0 : 1; }
int cudaStreamWaitEvent(void* s, void* e, unsigned int f) { return s && e && !f ? 0 : 1; }
int cudaEventCreateWithFlags(void** e, unsigned int flags) { (void)flags; *e = handle(); return 0; }
int cudaEventDestroy(void* e) { return unhandle(e); }
int cudaEventRecord(void* e, void* s) { return e && s ? 0 : 1; }
int cudaEventSynchronize(void* e) { return e ? 0 : 1; }
int cudaEventElapsedTime(float* ms, void* a, void* b) { if (!a || !b) return 1; *ms = 1.5f; return 0; }
/* A library keeps the image it was loaded from, as CUDA may under lazy loading. */
struct library { const char* code; };
static int loaded_kind, compiled_arch;
static int kernel_token;
#ifndef FAKE_NO_LIBRARY_API
static int image_kind(const char* code) {
    if (strncmp(code, fake_ptx, sizeof fake_ptx - 1) == 0) return 1;
    if (memcmp(code, fake_cubin, sizeof fake_cubin) == 0) return 2;
    return 0;
}
int cudaLibraryLoadData(void** lib, const void* code, void* jo, void** jv, unsigned int nj, void* lo, void** lv, unsigned int nl) {
    if (!code || jo || jv || nj || lo || lv || nl || current_device < 0) return 1;
    int kind = image_kind(code);
    if (!kind) return 1;
    struct library* l = handle_of(sizeof *l);
    l->code = code;
    loaded_kind = kind;
    *lib = l;
    return 0;
}
int cudaLibraryUnload(void* lib) { return unhandle(lib); }
int cudaLibraryGetKernel(void** k, void* lib, const char* name) {
    if (!lib || !image_kind(((struct library*)lib)->code) || strcmp(name, "topk_chunk") != 0) return 500;
    *k = &kernel_token;
    return 0;
}
#endif

/* Launch record, read by the test through fake_launch. */
struct launch {
    dim3 grid, block;
    size_t shared;
    void* in_vals; void* in_idx; int len; long long in_stride; int k; int chunk;
    void* out_vals; void* out_idx; long long out_stride; int final_pass;
};
static struct launch launches[64];
static int nlaunches;
int cudaLaunchKernel(const void* f, dim3 grid, dim3 block, void** args, size_t shared, void* s) {
    if (f != &kernel_token || !s || nlaunches == 64) return 1;
    struct launch* l = &launches[nlaunches++];
    l->grid = grid; l->block = block; l->shared = shared;
    l->in_vals = *(void**)args[0]; l->in_idx = *(void**)args[1]; l->len = *(int*)args[2];
    l->in_stride = *(long long*)args[3]; l->k = *(int*)args[4]; l->chunk = *(int*)args[5];
    l->out_vals = *(void**)args[6]; l->out_idx = *(void**)args[7];
    l->out_stride = *(long long*)args[8]; l->final_pass = *(int*)args[9];
    return 0;
}
int cudaGetLastError(void) { return 0; }

/* Test helpers (not CUDA). */
void fake_set_attr(int attr, int v) { attrs[attr] = v; }
/* fake_library_image returns the image library lib was loaded from. */
const void* fake_library_image(void* lib) { return ((struct library*)lib)->code; }
/* fake_loaded_kind says what the last cudaLibraryLoadData loaded: 1 PTX, 2 cubin. */
int fake_loaded_kind(void) { return loaded_kind; }
/* fake_compiled_arch returns the architecture of the last successful compile. */
int fake_compiled_arch(void) { return compiled_arch; }
void fake_set_device_count_error(int e) { device_count_error = e; }
unsigned int fake_register_flags(void) { return register_flags; }
int fake_launch_count(void) { int n = nlaunches; return n; }
void fake_launch_reset(void) { nlaunches = 0; }
/* fake_launch writes launch i as 16 int64s: grid xyz, block xyz, shared, then the args. */
int fake_launch(int i, long long* out) {
    if (i < 0 || i >= nlaunches) return 1;
    struct launch* l = &launches[i];
    long long v[16] = {l->grid.x, l->grid.y, l->grid.z, l->block.x, l->block.y, l->block.z, (long long)l->shared,
        (long long)(uintptr_t)l->in_vals, (long long)(uintptr_t)l->in_idx, l->len, l->in_stride, l->k, l->chunk,
        (long long)(uintptr_t)l->out_vals, (long long)(uintptr_t)l->out_idx, l->out_stride};
    memcpy(out, v, sizeof v);
    return l->final_pass;
}
long long fake_live(void) { return live_handles * 1000000 + registered; }

/* cuBLAS */
int cublasCreate_v2(void** h) { if (current_device < 0) return 1; *h = handle(); return 0; }
int cublasDestroy_v2(void* h) { return unhandle(h) ? 1 : 0; }
int cublasSetStream_v2(void* h, void* s) { return h && s ? 0 : 7; }
int cublasSetMathMode(void* h, int mode) { return h && mode == 0 ? 0 : 7; }
const char* cublasGetStatusName(int s) { return s == 7 ? "CUBLAS_STATUS_INVALID_VALUE" : "CUBLAS_STATUS_FAKE"; }
const char* cublasGetStatusString(int s) { (void)s; return "fake cublas status"; }

static float h2f(uint16_t h) {
    unsigned s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = m / 1024.0f / 16384.0f;
    else { v = (1 + m / 1024.0f); int x = (int)e - 15; while (x > 0) { v *= 2; x--; } while (x < 0) { v /= 2; x++; } }
    return s ? -v : v;
}
static int gemm(int ta, int tb, int m, int n, int k, float alpha, const void* A, int half, int lda,
                const void* B, int ldb, float beta, float* C, int ldc) {
    if (ta < 0 || ta > 1 || tb < 0 || tb > 1 || m <= 0 || n <= 0 || k <= 0) return 7;
    if (lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m) return 7;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int l = 0; l < k; l++) {
                long ai = ta ? l + (long)i * lda : i + (long)l * lda;
                long bi = tb ? j + (long)l * ldb : l + (long)j * ldb;
                float a = half ? h2f(((const uint16_t*)A)[ai]) : ((const float*)A)[ai];
                float b = half ? h2f(((const uint16_t*)B)[bi]) : ((const float*)B)[bi];
                s += (double)a * b;
            }
            long ci = i + (long)j * ldc;
            C[ci] = alpha * (float)s + (beta == 0 ? 0 : beta * C[ci]);
        }
    return 0;
}
int cublasSgemm_v2(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* A, int lda,
                   const float* B, int ldb, const float* beta, float* C, int ldc) {
    if (!h) return 7;
    return gemm(ta, tb, m, n, k, *alpha, A, 0, lda, B, ldb, *beta, C, ldc);
}
int cublasGemmEx(void* h, int ta, int tb, int m, int n, int k, const void* alpha, const void* A, int at, int lda,
                 const void* B, int bt, int ldb, const void* beta, void* C, int ct, int ldc, int compute, int algo) {
    if (!h || at != 2 || bt != 2 || ct != 0 || compute != 68 || algo != -1) return 7;
    return gemm(ta, tb, m, n, k, *(const float*)alpha, A, 1, lda, B, ldb, *(const float*)beta, C, ldc);
}

/* NVRTC: compiles for the architectures in archs only, to a cubin for sm_XY and to
   PTX for compute_XY. */
static const int archs[] = {75, 80, 86, 89, 90};
struct prog { char* src; int ok; int cubin; };
static const char fake_log[] = "topk.cu(1): error: fake";
const char* nvrtcGetErrorString(int r) { return r == 6 ? "NVRTC_ERROR_COMPILATION" : r == 5 ? "NVRTC_ERROR_INVALID_OPTION" : "NVRTC_ERROR_FAKE"; }
int nvrtcGetNumSupportedArchs(int* n) { *n = sizeof archs / sizeof archs[0]; return 0; }
int nvrtcGetSupportedArchs(int* out) { memcpy(out, archs, sizeof archs); return 0; }
int nvrtcCreateProgram(void** p, const char* src, const char* name, int nh, const char* const* h, const char* const* in) {
    if (!src || !name || nh || h || in) return 1;
    struct prog* pr = calloc(1, sizeof *pr);
    pr->src = strdup(src);
    *p = pr;
    pthread_mutex_lock(&mu); live_handles++; pthread_mutex_unlock(&mu);
    return 0;
}
int nvrtcCompileProgram(void* p, int n, const char* const* opts) {
    struct prog* pr = p;
    int arch = 0;
    for (int i = 0; i < n; i++) {
        int a, cubin = strncmp(opts[i], "--gpu-architecture=sm_", 22) == 0;
        if (!cubin && strncmp(opts[i], "--gpu-architecture=compute_", 27) != 0) continue;
        a = atoi(opts[i] + (cubin ? 22 : 27));
        for (size_t j = 0; j < sizeof archs / sizeof archs[0]; j++)
            if (archs[j] == a) { arch = a; pr->cubin = cubin; }
        if (!arch) return 5;
    }
    if (!arch || strstr(pr->src, "#error")) return 6;
    pr->ok = 1;
    compiled_arch = arch;
    return 0;
}
int nvrtcGetPTXSize(void* p, size_t* n) { struct prog* pr = p; if (!pr->ok || pr->cubin) return 1; *n = sizeof fake_ptx; return 0; }
int nvrtcGetPTX(void* p, char* out) { struct prog* pr = p; if (!pr->ok || pr->cubin) return 1; memcpy(out, fake_ptx, sizeof fake_ptx); return 0; }
int nvrtcGetCUBINSize(void* p, size_t* n) { struct prog* pr = p; if (!pr->ok || !pr->cubin) return 1; *n = sizeof fake_cubin; return 0; }
int nvrtcGetCUBIN(void* p, char* out) { struct prog* pr = p; if (!pr->ok || !pr->cubin) return 1; memcpy(out, fake_cubin, sizeof fake_cubin); return 0; }
int nvrtcGetProgramLogSize(void* p, size_t* n) { (void)p; *n = sizeof fake_log; return 0; }
int nvrtcGetProgramLog(void* p, char* out) { (void)p; memcpy(out, fake_log, sizeof fake_log); return 0; }
int nvrtcDestroyProgram(void** p) {
    struct prog* pr = *p;
    free(pr->src); free(pr);
    *p = 0;
    pthread_mutex_lock(&mu); live_handles--; pthread_mutex_unlock(&mu);
    return 0;
}
