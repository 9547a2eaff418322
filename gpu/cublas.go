package gpu

import (
	"fmt"
	"unsafe"
)

// cuBLAS constants (cublas_api.h, library_types.h; same in CUDA 12 and 13).
const (
	cublasStatusSuccess = 0

	cudaR32F = 0 // cudaDataType CUDA_R_32F
	cudaR16F = 2 // cudaDataType CUDA_R_16F

	cublasCompute32F  = 68 // cublasComputeType_t CUBLAS_COMPUTE_32F
	cublasGemmDefault = -1 // cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT
	cublasDefaultMath = 0  // cublasMath_t CUBLAS_DEFAULT_MATH
)

// Op says whether a GEMM operand is used as stored or transposed (cublasOperation_t).
type Op int32

// GEMM operand operations.
const (
	OpN Op = 0 // CUBLAS_OP_N: as stored
	OpT Op = 1 // CUBLAS_OP_T: transposed
)

// cublas holds the cuBLAS v2 entry points. cublasStatus_t and the enums are int32;
// the handle is an opaque pointer.
type cublas struct {
	// cublasStatus_t cublasCreate_v2(cublasHandle_t* handle)
	create func(h *uintptr) int32
	// cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
	destroy func(h uintptr) int32
	// cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId)
	setStream func(h, stream uintptr) int32
	// cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
	setMathMode func(h uintptr, mode int32) int32
	// cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
	//     int m, int n, int k, const float* alpha, const float* A, int lda,
	//     const float* B, int ldb, const float* beta, float* C, int ldc)
	sgemm func(h uintptr, ta, tb int32, m, n, k int32, alpha *float32, a uintptr, lda int32, b uintptr, ldb int32, beta *float32, c uintptr, ldc int32) int32
	// cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
	//     int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda,
	//     const void* B, cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
	//     cublasComputeType_t computeType, cublasGemmAlgo_t algo)
	gemmEx func(h uintptr, ta, tb int32, m, n, k int32, alpha unsafe.Pointer, a uintptr, aType, lda int32, b uintptr, bType, ldb int32, beta unsafe.Pointer, c uintptr, cType, ldc int32, compute, algo int32) int32
	// const char* cublasGetStatusName(cublasStatus_t status)
	statusName func(status int32) string
	// const char* cublasGetStatusString(cublasStatus_t status)
	statusString func(status int32) string
}

func (b *cublas) bind(h uintptr) error {
	return bindAll(h, map[string]any{
		"cublasCreate_v2":       &b.create,
		"cublasDestroy_v2":      &b.destroy,
		"cublasSetStream_v2":    &b.setStream,
		"cublasSetMathMode":     &b.setMathMode,
		"cublasSgemm_v2":        &b.sgemm,
		"cublasGemmEx":          &b.gemmEx,
		"cublasGetStatusName":   &b.statusName,
		"cublasGetStatusString": &b.statusString,
	})
}

func (b *cublas) check(status int32, op string) error {
	if status == cublasStatusSuccess {
		return nil
	}
	return &Error{Op: op, Code: int(status), Name: b.statusName(status), Text: b.statusString(status)}
}

// BLAS is a cuBLAS handle bound to one stream: every GEMM it runs is queued on that
// stream. Not for concurrent use by several goroutines with different streams; one
// BLAS per stream.
type BLAS struct {
	dev    *Device
	stream *Stream
	h      uintptr
}

// NewBLAS creates a cuBLAS handle on s's device, bound to s, in CUBLAS_DEFAULT_MATH
// (fp32 GEMMs are true fp32, no TF32 rounding, so scores match the CPU within 1e-4;
// fp16 GemmEx still uses tensor cores).
// The caller frees it with Close; s (and its Device) must outlive it.
func NewBLAS(s *Stream) (*BLAS, error) {
	b := &BLAS{dev: s.dev, stream: s}
	err := s.dev.do(func(rt *cudart) error {
		cb := &s.dev.lib.blas
		if err := cb.check(cb.create(&b.h), "cublasCreate_v2"); err != nil {
			return err
		}
		if err := cb.check(cb.setStream(b.h, s.h), "cublasSetStream_v2"); err != nil {
			cb.destroy(b.h)
			return err
		}
		if err := cb.check(cb.setMathMode(b.h, cublasDefaultMath), "cublasSetMathMode"); err != nil {
			cb.destroy(b.h)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Close destroys the handle (cublasDestroy_v2, which synchronizes the device); it is
// nil-safe and idempotent.
func (b *BLAS) Close() error {
	if b == nil || b.h == 0 {
		return nil
	}
	h := b.h
	b.h = 0
	return b.dev.do(func(*cudart) error {
		cb := &b.dev.lib.blas
		return cb.check(cb.destroy(h), "cublasDestroy_v2")
	})
}

// Gemm is the arguments of one column-major GEMM in cuBLAS's (BLAS's) definition:
//
//	C = alpha·op(A)·op(B) + beta·C
//
// where op(A) is m×k, op(B) is k×n and C is m×n, all column-major: element (i, j)
// of a matrix X with leading dimension ldX is X[i + j·ldX]. A is stored m×k (lda ≥ m)
// when TransA is OpN and k×m (lda ≥ k) when OpT; likewise B is k×n (ldb ≥ k) or n×k
// (ldb ≥ n); ldc ≥ m.
type Gemm struct {
	TransA, TransB Op
	M, N, K        int
	LDA, LDB, LDC  int
}

// ScoresGemm returns the GEMM that computes the scores of q queries against an
// n-row matrix in d dimensions, all row-major as the index stores them:
//
//	S (q×n, row-major) = Q (q×d, row-major) · Mᵀ  where M is n×d, row-major
//
// Row-major X (r×c) is, byte for byte, column-major Xᶜ (c×r) with leading dimension
// c. So S = Q·Mᵀ is column-major Sᶜ (n×q, ldc = n) = (Q·Mᵀ)ᵀ = M·Qᵀ = (Mᶜ)ᵀ·Qᶜ,
// with Mᶜ d×n (lda = d) transposed and Qᶜ d×q (ldb = d) as stored. The exact call:
//
//	cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m=n, n=q, k=d, &alpha, M, lda=d, Q, ldb=d, &beta, S, ldc=n)
//
// with A = M and B = Q.
func ScoresGemm(n, q, d int) Gemm {
	return Gemm{TransA: OpT, TransB: OpN, M: n, N: q, K: d, LDA: d, LDB: d, LDC: n}
}

// validate checks the shape rules of the definition above and the int32 range.
func (g Gemm) validate() error {
	rowsA, rowsB := g.M, g.K
	if g.TransA == OpT {
		rowsA = g.K
	}
	if g.TransB == OpT {
		rowsB = g.N
	}
	switch {
	case g.M <= 0 || g.N <= 0 || g.K <= 0:
		return fmt.Errorf("embedd/gpu: gemm m=%d n=%d k=%d: sizes must be positive", g.M, g.N, g.K)
	case g.LDA < rowsA || g.LDB < rowsB || g.LDC < g.M:
		return fmt.Errorf("embedd/gpu: gemm lda=%d ldb=%d ldc=%d: must be at least %d, %d, %d", g.LDA, g.LDB, g.LDC, rowsA, rowsB, g.M)
	case g.M > 1<<31-1 || g.N > 1<<31-1 || g.K > 1<<31-1 || g.LDA > 1<<31-1 || g.LDB > 1<<31-1 || g.LDC > 1<<31-1:
		return fmt.Errorf("embedd/gpu: gemm sizes exceed int32")
	}
	return nil
}

// Sgemm queues C = alpha·op(A)·op(B) + beta·C (fp32; see Gemm for the
// column-major definition and ScoresGemm for search) on the handle's stream.
// alpha and beta are read before Sgemm returns (host pointer mode).
func (b *BLAS) Sgemm(g Gemm, alpha float32, a, bm DevicePtr, beta float32, c DevicePtr) error {
	if err := g.validate(); err != nil {
		return err
	}
	return b.dev.do(func(*cudart) error {
		cb := &b.dev.lib.blas
		return cb.check(cb.sgemm(b.h, int32(g.TransA), int32(g.TransB), int32(g.M), int32(g.N), int32(g.K),
			&alpha, uintptr(a), int32(g.LDA), uintptr(bm), int32(g.LDB), &beta, uintptr(c), int32(g.LDC)),
			fmt.Sprintf("cublasSgemm_v2(m=%d n=%d k=%d)", g.M, g.N, g.K))
	})
}

// GemmF16 queues the same product as Sgemm with A and B stored as IEEE fp16
// (CUDA_R_16F) and C, alpha, beta and the accumulation in fp32 (CUDA_R_32F,
// CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) via cublasGemmEx.
func (b *BLAS) GemmF16(g Gemm, alpha float32, a, bm DevicePtr, beta float32, c DevicePtr) error {
	if err := g.validate(); err != nil {
		return err
	}
	return b.dev.do(func(*cudart) error {
		cb := &b.dev.lib.blas
		return cb.check(cb.gemmEx(b.h, int32(g.TransA), int32(g.TransB), int32(g.M), int32(g.N), int32(g.K),
			unsafe.Pointer(&alpha), uintptr(a), cudaR16F, int32(g.LDA), uintptr(bm), cudaR16F, int32(g.LDB),
			unsafe.Pointer(&beta), uintptr(c), cudaR32F, int32(g.LDC), cublasCompute32F, cublasGemmDefault),
			fmt.Sprintf("cublasGemmEx(f16, m=%d n=%d k=%d)", g.M, g.N, g.K))
	})
}
