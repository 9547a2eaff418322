#include "textflag.h"

// ROW_AND_NEXT sets AX to the address of table row rows[R10] (the table
// at SI, R8 bytes a row) and R11 to the next row's, or jumps to skip when
// R10 is the last row. The kernels fetch the next row's columns ahead with
// the non-temporal hint (PREFETCH4, PREFETCH12: 4 or 12 cache lines from
// R11), which keeps the rows from pushing other data (the tokenizer's
// tables) out of the larger caches: faster than no prefetch, and than
// PREFETCHT0, on AMD EPYC.
#define ROW_AND_NEXT(skip) \
	MOVLQSX (BX)(R10*4), AX; \
	IMULQ   R8, AX; \
	ADDQ    SI, AX; \
	LEAQ    1(R10), R11; \
	CMPQ    R11, CX; \
	JGE     skip; \
	MOVLQSX (BX)(R11*4), R11; \
	IMULQ   R8, R11; \
	ADDQ    SI, R11

#define PREFETCH4 \
	PREFETCHNTA (R11); \
	PREFETCHNTA 64(R11); \
	PREFETCHNTA 128(R11); \
	PREFETCHNTA 192(R11)

#define PREFETCH12 \
	PREFETCH4; \
	PREFETCHNTA 256(R11); \
	PREFETCHNTA 320(R11); \
	PREFETCHNTA 384(R11); \
	PREFETCHNTA 448(R11); \
	PREFETCHNTA 512(R11); \
	PREFETCHNTA 576(R11); \
	PREFETCHNTA 640(R11); \
	PREFETCHNTA 704(R11)

// ZEROUPPER512 ends an AVX-512 kernel: VZEROUPPER leaves Z16-Z31 as they
// are, so they are cleared too, and no AVX-512 state stays in use once the
// kernel returns.
#define ZEROUPPER512 \
	VPXORQ Z16, Z16, Z16; \
	VPXORQ Z17, Z17, Z17; \
	VPXORQ Z18, Z18, Z18; \
	VPXORQ Z19, Z19, Z19; \
	VPXORQ Z20, Z20, Z20; \
	VPXORQ Z21, Z21, Z21; \
	VPXORQ Z22, Z22, Z22; \
	VPXORQ Z23, Z23, Z23; \
	VPXORQ Z24, Z24, Z24; \
	VPXORQ Z25, Z25, Z25; \
	VPXORQ Z26, Z26, Z26; \
	VPXORQ Z27, Z27, Z27; \
	VPXORQ Z28, Z28, Z28; \
	VPXORQ Z29, Z29, Z29; \
	VPXORQ Z30, Z30, Z30; \
	VPXORQ Z31, Z31, Z31; \
	VZEROUPPER

// LOADY8 and STOREY8 move 64 columns of dst (at DI) to and from Y0-Y7;
// LOADZ24 and STOREZ24 move 384 to and from Z0-Z23.
#define LOADY8 \
	VMOVUPS (DI), Y0; \
	VMOVUPS 32(DI), Y1; \
	VMOVUPS 64(DI), Y2; \
	VMOVUPS 96(DI), Y3; \
	VMOVUPS 128(DI), Y4; \
	VMOVUPS 160(DI), Y5; \
	VMOVUPS 192(DI), Y6; \
	VMOVUPS 224(DI), Y7

#define STOREY8 \
	VMOVUPS Y0, (DI); \
	VMOVUPS Y1, 32(DI); \
	VMOVUPS Y2, 64(DI); \
	VMOVUPS Y3, 96(DI); \
	VMOVUPS Y4, 128(DI); \
	VMOVUPS Y5, 160(DI); \
	VMOVUPS Y6, 192(DI); \
	VMOVUPS Y7, 224(DI)

#define LOADZ24 \
	VMOVUPS (DI), Z0; \
	VMOVUPS 64(DI), Z1; \
	VMOVUPS 128(DI), Z2; \
	VMOVUPS 192(DI), Z3; \
	VMOVUPS 256(DI), Z4; \
	VMOVUPS 320(DI), Z5; \
	VMOVUPS 384(DI), Z6; \
	VMOVUPS 448(DI), Z7; \
	VMOVUPS 512(DI), Z8; \
	VMOVUPS 576(DI), Z9; \
	VMOVUPS 640(DI), Z10; \
	VMOVUPS 704(DI), Z11; \
	VMOVUPS 768(DI), Z12; \
	VMOVUPS 832(DI), Z13; \
	VMOVUPS 896(DI), Z14; \
	VMOVUPS 960(DI), Z15; \
	VMOVUPS 1024(DI), Z16; \
	VMOVUPS 1088(DI), Z17; \
	VMOVUPS 1152(DI), Z18; \
	VMOVUPS 1216(DI), Z19; \
	VMOVUPS 1280(DI), Z20; \
	VMOVUPS 1344(DI), Z21; \
	VMOVUPS 1408(DI), Z22; \
	VMOVUPS 1472(DI), Z23

#define STOREZ24 \
	VMOVUPS Z0, (DI); \
	VMOVUPS Z1, 64(DI); \
	VMOVUPS Z2, 128(DI); \
	VMOVUPS Z3, 192(DI); \
	VMOVUPS Z4, 256(DI); \
	VMOVUPS Z5, 320(DI); \
	VMOVUPS Z6, 384(DI); \
	VMOVUPS Z7, 448(DI); \
	VMOVUPS Z8, 512(DI); \
	VMOVUPS Z9, 576(DI); \
	VMOVUPS Z10, 640(DI); \
	VMOVUPS Z11, 704(DI); \
	VMOVUPS Z12, 768(DI); \
	VMOVUPS Z13, 832(DI); \
	VMOVUPS Z14, 896(DI); \
	VMOVUPS Z15, 960(DI); \
	VMOVUPS Z16, 1024(DI); \
	VMOVUPS Z17, 1088(DI); \
	VMOVUPS Z18, 1152(DI); \
	VMOVUPS Z19, 1216(DI); \
	VMOVUPS Z20, 1280(DI); \
	VMOVUPS Z21, 1344(DI); \
	VMOVUPS Z22, 1408(DI); \
	VMOVUPS Z23, 1472(DI)


// func addRowsAVX2(dst, table *float32, rows *int32, nrows, dim int)
// dst[i] += table[r*dim+i] for each r of rows[:nrows], i < dim:
// 64 columns of dst at a time held in Y0-Y7 while the rows are added in
// order, then 8 columns, then one. nrows > 0 and dim > 0.
TEXT ·addRowsAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ table+8(FP), SI
	MOVQ rows+16(FP), BX
	MOVQ nrows+24(FP), CX
	MOVQ dim+32(FP), DX
	LEAQ (DX*4), R8     // row stride in bytes

fcols64:
	CMPQ DX, $64
	JLT  fcols8
	LOADY8
	XORQ R10, R10

frows64:
	ROW_AND_NEXT(ffetched64)
	PREFETCH4

ffetched64:
	VADDPS (AX), Y0, Y0
	VADDPS 32(AX), Y1, Y1
	VADDPS 64(AX), Y2, Y2
	VADDPS 96(AX), Y3, Y3
	VADDPS 128(AX), Y4, Y4
	VADDPS 160(AX), Y5, Y5
	VADDPS 192(AX), Y6, Y6
	VADDPS 224(AX), Y7, Y7
	INCQ    R10
	CMPQ    R10, CX
	JLT     frows64
	STOREY8
	ADDQ $256, DI
	ADDQ $256, SI
	SUBQ $64, DX
	JMP  fcols64

fcols8:
	CMPQ DX, $8
	JLT  fcols1
	VMOVUPS (DI), Y0
	XORQ R10, R10

frows8:
	MOVLQSX (BX)(R10*4), AX
	IMULQ   R8, AX
	ADDQ    SI, AX
	VADDPS (AX), Y0, Y0
	INCQ    R10
	CMPQ    R10, CX
	JLT     frows8
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, DX
	JMP  fcols8

fcols1:
	CMPQ   DX, $0
	JE     fdone
	VMOVSS (DI), X0
	XORQ   R10, R10

frows1:
	MOVLQSX (BX)(R10*4), AX
	IMULQ   R8, AX
	VADDSS  (SI)(AX*1), X0, X0
	INCQ    R10
	CMPQ    R10, CX
	JLT     frows1
	VMOVSS  X0, (DI)
	ADDQ    $4, DI
	ADDQ    $4, SI
	DECQ    DX
	JMP     fcols1

fdone:
	VZEROUPPER
	RET

// func addHalfRowsF16C(dst *float32, table *uint16, rows *int32, nrows, dim int)
// dst[i] += float32(half table[r*dim+i]) for each r of rows[:nrows], i < dim:
// 64 columns of dst at a time held in Y0-Y7 while the rows are added in
// order, then 8 columns, then one. nrows > 0 and dim > 0.
TEXT ·addHalfRowsF16C(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ table+8(FP), SI
	MOVQ rows+16(FP), BX
	MOVQ nrows+24(FP), CX
	MOVQ dim+32(FP), DX
	LEAQ (DX)(DX*1), R8 // row stride in bytes

hcols64:
	CMPQ DX, $64
	JLT  hcols8
	LOADY8
	XORQ R10, R10

hrows64:
	ROW_AND_NEXT(hfetched64)
	PREFETCHNTA (R11)
	PREFETCHNTA 64(R11)

hfetched64:
	VCVTPH2PS (AX), Y8
	VCVTPH2PS 16(AX), Y9
	VCVTPH2PS 32(AX), Y10
	VCVTPH2PS 48(AX), Y11
	VCVTPH2PS 64(AX), Y12
	VCVTPH2PS 80(AX), Y13
	VCVTPH2PS 96(AX), Y14
	VCVTPH2PS 112(AX), Y15
	VADDPS    Y8, Y0, Y0
	VADDPS    Y9, Y1, Y1
	VADDPS    Y10, Y2, Y2
	VADDPS    Y11, Y3, Y3
	VADDPS    Y12, Y4, Y4
	VADDPS    Y13, Y5, Y5
	VADDPS    Y14, Y6, Y6
	VADDPS    Y15, Y7, Y7
	INCQ    R10
	CMPQ    R10, CX
	JLT     hrows64
	STOREY8
	ADDQ $256, DI
	ADDQ $128, SI
	SUBQ $64, DX
	JMP  hcols64

hcols8:
	CMPQ DX, $8
	JLT  hcols1
	VMOVUPS (DI), Y0
	XORQ R10, R10

hrows8:
	MOVLQSX (BX)(R10*4), AX
	IMULQ   R8, AX
	ADDQ    SI, AX
	VCVTPH2PS (AX), Y8
	VADDPS    Y8, Y0, Y0
	INCQ    R10
	CMPQ    R10, CX
	JLT     hrows8
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $16, SI
	SUBQ $8, DX
	JMP  hcols8

hcols1:
	CMPQ   DX, $0
	JE     hdone
	VMOVSS (DI), X0
	XORQ   R10, R10

hrows1:
	MOVLQSX (BX)(R10*4), AX
	IMULQ   R8, AX
	MOVWLZX   (SI)(AX*1), R11
	VMOVD     R11, X8
	VCVTPH2PS X8, X8
	VADDSS    X8, X0, X0
	INCQ    R10
	CMPQ    R10, CX
	JLT     hrows1
	VMOVSS  X0, (DI)
	ADDQ    $4, DI
	ADDQ    $2, SI
	DECQ    DX
	JMP     hcols1

hdone:
	VZEROUPPER
	RET

// func addRowsAVX512(dst, table *float32, rows *int32, nrows, dim int)
// addRowsAVX2 with AVX-512: 384 columns of dst at a time held in Z0-Z23,
// so each row of a 384-wide table is read start to end in one pass; then
// 64 columns (Z0-Z3), then 8 (Y0), then one. nrows > 0 and dim > 0.
TEXT ·addRowsAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ table+8(FP), SI
	MOVQ rows+16(FP), BX
	MOVQ nrows+24(FP), CX
	MOVQ dim+32(FP), DX
	LEAQ (DX*4), R8     // row stride in bytes

zfcols384:
	CMPQ DX, $384
	JLT  zfcols64
	LOADZ24
	XORQ R10, R10

zfrows384:
	ROW_AND_NEXT(zffetched384)
	PREFETCH12
	ADDQ $768, R11
	PREFETCH12

zffetched384:
	VADDPS (AX), Z0, Z0
	VADDPS 64(AX), Z1, Z1
	VADDPS 128(AX), Z2, Z2
	VADDPS 192(AX), Z3, Z3
	VADDPS 256(AX), Z4, Z4
	VADDPS 320(AX), Z5, Z5
	VADDPS 384(AX), Z6, Z6
	VADDPS 448(AX), Z7, Z7
	VADDPS 512(AX), Z8, Z8
	VADDPS 576(AX), Z9, Z9
	VADDPS 640(AX), Z10, Z10
	VADDPS 704(AX), Z11, Z11
	VADDPS 768(AX), Z12, Z12
	VADDPS 832(AX), Z13, Z13
	VADDPS 896(AX), Z14, Z14
	VADDPS 960(AX), Z15, Z15
	VADDPS 1024(AX), Z16, Z16
	VADDPS 1088(AX), Z17, Z17
	VADDPS 1152(AX), Z18, Z18
	VADDPS 1216(AX), Z19, Z19
	VADDPS 1280(AX), Z20, Z20
	VADDPS 1344(AX), Z21, Z21
	VADDPS 1408(AX), Z22, Z22
	VADDPS 1472(AX), Z23, Z23
	INCQ    R10
	CMPQ    R10, CX
	JLT     zfrows384
	STOREZ24
	ADDQ $1536, DI
	ADDQ $1536, SI
	SUBQ $384, DX
	JMP  zfcols384

zfcols64:
	CMPQ DX, $64
	JLT  zfcols8
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	XORQ R10, R10

zfrows64:
	MOVLQSX (BX)(R10*4), AX
	IMULQ   R8, AX
	ADDQ    SI, AX
	VADDPS (AX), Z0, Z0
	VADDPS 64(AX), Z1, Z1
	VADDPS 128(AX), Z2, Z2
	VADDPS 192(AX), Z3, Z3
	INCQ    R10
	CMPQ    R10, CX
	JLT     zfrows64
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $256, DI
	ADDQ $256, SI
	SUBQ $64, DX
	JMP  zfcols64

zfcols8:
	CMPQ DX, $8
	JLT  zfcols1
	VMOVUPS (DI), Y0
	XORQ R10, R10

zfrows8:
	MOVLQSX (BX)(R10*4), AX
	IMULQ   R8, AX
	ADDQ    SI, AX
	VADDPS (AX), Y0, Y0
	INCQ    R10
	CMPQ    R10, CX
	JLT     zfrows8
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $8, DX
	JMP  zfcols8

zfcols1:
	CMPQ   DX, $0
	JE     zfdone
	VMOVSS (DI), X0
	XORQ   R10, R10

zfrows1:
	MOVLQSX (BX)(R10*4), AX
	IMULQ   R8, AX
	VADDSS  (SI)(AX*1), X0, X0
	INCQ    R10
	CMPQ    R10, CX
	JLT     zfrows1
	VMOVSS  X0, (DI)
	ADDQ    $4, DI
	ADDQ    $4, SI
	DECQ    DX
	JMP     zfcols1

zfdone:
	ZEROUPPER512
	RET

// func addHalfRowsAVX512(dst *float32, table *uint16, rows *int32, nrows, dim int)
// addHalfRowsF16C with AVX-512: 384 columns of dst at a time held in Z0-Z23,
// so each row of a 384-wide table is read start to end in one pass; then
// 64 columns (Z0-Z3), then 8 (Y0), then one. nrows > 0 and dim > 0.
TEXT ·addHalfRowsAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ table+8(FP), SI
	MOVQ rows+16(FP), BX
	MOVQ nrows+24(FP), CX
	MOVQ dim+32(FP), DX
	LEAQ (DX)(DX*1), R8 // row stride in bytes

zhcols384:
	CMPQ DX, $384
	JLT  zhcols64
	LOADZ24
	XORQ R10, R10

zhrows384:
	ROW_AND_NEXT(zhfetched384)
	PREFETCH12

zhfetched384:
	VCVTPH2PS (AX), Z24
	VCVTPH2PS 32(AX), Z25
	VCVTPH2PS 64(AX), Z26
	VCVTPH2PS 96(AX), Z27
	VCVTPH2PS 128(AX), Z28
	VCVTPH2PS 160(AX), Z29
	VCVTPH2PS 192(AX), Z30
	VCVTPH2PS 224(AX), Z31
	VADDPS    Z24, Z0, Z0
	VADDPS    Z25, Z1, Z1
	VADDPS    Z26, Z2, Z2
	VADDPS    Z27, Z3, Z3
	VADDPS    Z28, Z4, Z4
	VADDPS    Z29, Z5, Z5
	VADDPS    Z30, Z6, Z6
	VADDPS    Z31, Z7, Z7
	VCVTPH2PS 256(AX), Z24
	VCVTPH2PS 288(AX), Z25
	VCVTPH2PS 320(AX), Z26
	VCVTPH2PS 352(AX), Z27
	VCVTPH2PS 384(AX), Z28
	VCVTPH2PS 416(AX), Z29
	VCVTPH2PS 448(AX), Z30
	VCVTPH2PS 480(AX), Z31
	VADDPS    Z24, Z8, Z8
	VADDPS    Z25, Z9, Z9
	VADDPS    Z26, Z10, Z10
	VADDPS    Z27, Z11, Z11
	VADDPS    Z28, Z12, Z12
	VADDPS    Z29, Z13, Z13
	VADDPS    Z30, Z14, Z14
	VADDPS    Z31, Z15, Z15
	VCVTPH2PS 512(AX), Z24
	VCVTPH2PS 544(AX), Z25
	VCVTPH2PS 576(AX), Z26
	VCVTPH2PS 608(AX), Z27
	VCVTPH2PS 640(AX), Z28
	VCVTPH2PS 672(AX), Z29
	VCVTPH2PS 704(AX), Z30
	VCVTPH2PS 736(AX), Z31
	VADDPS    Z24, Z16, Z16
	VADDPS    Z25, Z17, Z17
	VADDPS    Z26, Z18, Z18
	VADDPS    Z27, Z19, Z19
	VADDPS    Z28, Z20, Z20
	VADDPS    Z29, Z21, Z21
	VADDPS    Z30, Z22, Z22
	VADDPS    Z31, Z23, Z23
	INCQ    R10
	CMPQ    R10, CX
	JLT     zhrows384
	STOREZ24
	ADDQ $1536, DI
	ADDQ $768, SI
	SUBQ $384, DX
	JMP  zhcols384

zhcols64:
	CMPQ DX, $64
	JLT  zhcols8
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	XORQ R10, R10

zhrows64:
	MOVLQSX (BX)(R10*4), AX
	IMULQ   R8, AX
	ADDQ    SI, AX
	VCVTPH2PS (AX), Z24
	VCVTPH2PS 32(AX), Z25
	VCVTPH2PS 64(AX), Z26
	VCVTPH2PS 96(AX), Z27
	VADDPS    Z24, Z0, Z0
	VADDPS    Z25, Z1, Z1
	VADDPS    Z26, Z2, Z2
	VADDPS    Z27, Z3, Z3
	INCQ    R10
	CMPQ    R10, CX
	JLT     zhrows64
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $256, DI
	ADDQ $128, SI
	SUBQ $64, DX
	JMP  zhcols64

zhcols8:
	CMPQ DX, $8
	JLT  zhcols1
	VMOVUPS (DI), Y0
	XORQ R10, R10

zhrows8:
	MOVLQSX (BX)(R10*4), AX
	IMULQ   R8, AX
	ADDQ    SI, AX
	VCVTPH2PS (AX), Y24
	VADDPS    Y24, Y0, Y0
	INCQ    R10
	CMPQ    R10, CX
	JLT     zhrows8
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $16, SI
	SUBQ $8, DX
	JMP  zhcols8

zhcols1:
	CMPQ   DX, $0
	JE     zhdone
	VMOVSS (DI), X0
	XORQ   R10, R10

zhrows1:
	MOVLQSX (BX)(R10*4), AX
	IMULQ   R8, AX
	MOVWLZX   (SI)(AX*1), R11
	VMOVD     R11, X8
	VCVTPH2PS X8, X8
	VADDSS    X8, X0, X0
	INCQ    R10
	CMPQ    R10, CX
	JLT     zhrows1
	VMOVSS  X0, (DI)
	ADDQ    $4, DI
	ADDQ    $2, SI
	DECQ    DX
	JMP     zhcols1

zhdone:
	ZEROUPPER512
	RET
