#include "textflag.h"

// The dot4 kernels compute the 4×nrows block of dot products
//
//	out[i*ldo + j] = q[i*dim : i*dim+dim] · r[j*dim : j*dim+dim],  i < 4, j < nrows
//
// for four queries stored one after the other and nrows (a multiple of 4)
// matrix rows stored one after the other. The register tile is four queries
// by four rows (AVX-512) or by two rows (AVX2): the tile's row and query
// chunks are loaded once per step and each feeds four or two FMAs into
// separate accumulators, so a step does 16 (or 8) FMAs for 8 (or 6) loads.
// The dot1 kernels do the same for one query and four rows. A dim that is
// not a multiple of the vector width ends with one masked step, which never
// reads past the last row.

// Z0..Z15 += the products of rows Z16..Z19 and queries Z20..Z23:
// accumulator Z(4j+i) holds query i · row j.
#define FMA4X4 \
	VFMADD231PS Z20, Z16, Z0  \
	VFMADD231PS Z21, Z16, Z1  \
	VFMADD231PS Z22, Z16, Z2  \
	VFMADD231PS Z23, Z16, Z3  \
	VFMADD231PS Z20, Z17, Z4  \
	VFMADD231PS Z21, Z17, Z5  \
	VFMADD231PS Z22, Z17, Z6  \
	VFMADD231PS Z23, Z17, Z7  \
	VFMADD231PS Z20, Z18, Z8  \
	VFMADD231PS Z21, Z18, Z9  \
	VFMADD231PS Z22, Z18, Z10 \
	VFMADD231PS Z23, Z18, Z11 \
	VFMADD231PS Z20, Z19, Z12 \
	VFMADD231PS Z21, Z19, Z13 \
	VFMADD231PS Z22, Z19, Z14 \
	VFMADD231PS Z23, Z19, Z15

// One 16-float step of the four rows and four queries.
#define STEP4X4 \
	VMOVUPS (DI), Z16        \
	VMOVUPS (DI)(BX*1), Z17  \
	VMOVUPS (DI)(BX*2), Z18  \
	VMOVUPS (R11), Z19       \
	VMOVUPS (SI), Z20        \
	VMOVUPS (SI)(BX*1), Z21  \
	VMOVUPS (SI)(BX*2), Z22  \
	VMOVUPS (R10), Z23       \
	FMA4X4                   \
	ADDQ    $64, SI          \
	ADDQ    $64, R10         \
	ADDQ    $64, DI          \
	ADDQ    $64, R11

// func dot4AVX512(q []float32, r []float32, nrows int, dim int, out []float32, ldo int, next *float32)
//
// If next is not nil the kernel also prefetches, into L2, the nrows*dim
// floats from next (the following row block): four cache lines a step, as
// many as the step reads from r. The caller passes it with the first query
// tile of a block, so the next block streams in while the other tiles
// compute on this one.
//
// Registers: SI, R10 query 0 and 3 (queries 1 and 2 at SI+BX, SI+2*BX);
// DI, R11 row 0 and 3 of the tile (rows 1 and 2 at DI+BX, DI+2*BX);
// BX the vector stride in bytes; R12 the queries' start; R13 the tile's first
// row; CX rows left; AX steps left; DX the prefetch pointer (0: none); K1
// the tail mask (zero when dim%16 == 0); R8, R14 the output for queries 0
// and 3 (1 and 2 at R8+R9, R8+2*R9); R9 ldo in bytes.
TEXT ·dot4AVX512(SB), NOSPLIT, $0-104
	MOVQ q_base+0(FP), R12
	MOVQ r_base+24(FP), R13
	MOVQ dim+56(FP), BX
	MOVQ out_base+64(FP), R8
	MOVQ ldo+88(FP), R9
	MOVQ next+96(FP), DX
	SHLQ $2, R9
	LEAQ (R8)(R9*2), R14
	ADDQ R9, R14

	// K1 = (1 << (dim%16)) - 1
	MOVQ BX, CX
	ANDQ $15, CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	MOVQ nrows+48(FP), CX

	SHLQ  $2, BX
	TESTQ CX, CX
	JEQ   done512

tile512:
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
	VXORPS Z8, Z8, Z8
	VXORPS Z9, Z9, Z9
	VXORPS Z10, Z10, Z10
	VXORPS Z11, Z11, Z11
	VXORPS Z12, Z12, Z12
	VXORPS Z13, Z13, Z13
	VXORPS Z14, Z14, Z14
	VXORPS Z15, Z15, Z15
	MOVQ   R12, SI
	LEAQ   (SI)(BX*2), R10
	ADDQ   BX, R10
	MOVQ   R13, DI
	LEAQ   (DI)(BX*2), R11
	ADDQ   BX, R11
	MOVQ   dim+56(FP), AX
	SHRQ   $4, AX
	JEQ    tail512
	TESTQ  DX, DX
	JNE    steppf512

step512:
	STEP4X4
	DECQ AX
	JNE  step512
	JMP  tail512

steppf512:
	PREFETCHT1 (DX)
	PREFETCHT1 64(DX)
	PREFETCHT1 128(DX)
	PREFETCHT1 192(DX)
	ADDQ       $256, DX
	STEP4X4
	DECQ       AX
	JNE        steppf512

tail512:
	KORTESTW  K1, K1
	JEQ       reduce512
	VMOVUPS.Z (DI), K1, Z16
	VMOVUPS.Z (DI)(BX*1), K1, Z17
	VMOVUPS.Z (DI)(BX*2), K1, Z18
	VMOVUPS.Z (R11), K1, Z19
	VMOVUPS.Z (SI), K1, Z20
	VMOVUPS.Z (SI)(BX*1), K1, Z21
	VMOVUPS.Z (SI)(BX*2), K1, Z22
	VMOVUPS.Z (R10), K1, Z23
	FMA4X4

reduce512:
	// Level 1: Z(p) = 256-bit halves of Z(2p) and Z(2p+1) added:
	// 128-bit lanes [A0+A2, A1+A3, B0+B2, B1+B3].
	VSHUFF32X4 $0x44, Z1, Z0, Z16
	VSHUFF32X4 $0xEE, Z1, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VSHUFF32X4 $0x44, Z3, Z2, Z16
	VSHUFF32X4 $0xEE, Z3, Z2, Z17
	VADDPS     Z17, Z16, Z1
	VSHUFF32X4 $0x44, Z5, Z4, Z16
	VSHUFF32X4 $0xEE, Z5, Z4, Z17
	VADDPS     Z17, Z16, Z2
	VSHUFF32X4 $0x44, Z7, Z6, Z16
	VSHUFF32X4 $0xEE, Z7, Z6, Z17
	VADDPS     Z17, Z16, Z3
	VSHUFF32X4 $0x44, Z9, Z8, Z16
	VSHUFF32X4 $0xEE, Z9, Z8, Z17
	VADDPS     Z17, Z16, Z4
	VSHUFF32X4 $0x44, Z11, Z10, Z16
	VSHUFF32X4 $0xEE, Z11, Z10, Z17
	VADDPS     Z17, Z16, Z5
	VSHUFF32X4 $0x44, Z13, Z12, Z16
	VSHUFF32X4 $0xEE, Z13, Z12, Z17
	VADDPS     Z17, Z16, Z6
	VSHUFF32X4 $0x44, Z15, Z14, Z16
	VSHUFF32X4 $0xEE, Z15, Z14, Z17
	VADDPS     Z17, Z16, Z7

	// Level 2: Z(m) lane k = 4-float partial sums of accumulator 4m+k.
	VSHUFF32X4 $0x88, Z1, Z0, Z16
	VSHUFF32X4 $0xDD, Z1, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VSHUFF32X4 $0x88, Z3, Z2, Z16
	VSHUFF32X4 $0xDD, Z3, Z2, Z17
	VADDPS     Z17, Z16, Z1
	VSHUFF32X4 $0x88, Z5, Z4, Z16
	VSHUFF32X4 $0xDD, Z5, Z4, Z17
	VADDPS     Z17, Z16, Z2
	VSHUFF32X4 $0x88, Z7, Z6, Z16
	VSHUFF32X4 $0xDD, Z7, Z6, Z17
	VADDPS     Z17, Z16, Z3

	// Level 3: within each 128-bit lane k, element m = sum of Z(m) lane k,
	// that is query k · row m.
	VSHUFPS $0x88, Z1, Z0, Z16
	VSHUFPS $0xDD, Z1, Z0, Z17
	VADDPS  Z17, Z16, Z18
	VSHUFPS $0x88, Z3, Z2, Z16
	VSHUFPS $0xDD, Z3, Z2, Z17
	VADDPS  Z17, Z16, Z19
	VSHUFPS $0x88, Z19, Z18, Z16
	VSHUFPS $0xDD, Z19, Z18, Z17
	VADDPS  Z17, Z16, Z0

	VMOVUPS       X0, (R8)
	VEXTRACTF32X4 $1, Z0, X1
	VMOVUPS       X1, (R8)(R9*1)
	VEXTRACTF32X4 $2, Z0, X2
	VMOVUPS       X2, (R8)(R9*2)
	VEXTRACTF32X4 $3, Z0, X3
	VMOVUPS       X3, (R14)
	ADDQ          $16, R8
	ADDQ          $16, R14

	LEAQ (R13)(BX*4), R13
	SUBQ $4, CX
	JNE  tile512

done512:
	VZEROUPPER
	RET

// Mask table for the AVX2 tail: eight all-ones words then eight zeros; the
// eight words at offset 4*(8-rem) enable the first rem lanes.
DATA tailmask<>+0(SB)/8, $0xffffffffffffffff
DATA tailmask<>+8(SB)/8, $0xffffffffffffffff
DATA tailmask<>+16(SB)/8, $0xffffffffffffffff
DATA tailmask<>+24(SB)/8, $0xffffffffffffffff
DATA tailmask<>+32(SB)/8, $0
DATA tailmask<>+40(SB)/8, $0
DATA tailmask<>+48(SB)/8, $0
DATA tailmask<>+56(SB)/8, $0
GLOBL tailmask<>(SB), RODATA|NOPTR, $64

// One 8-float step of two rows and four queries: Y0,Y1 += query 0 · rows
// 0,1; Y2,Y3 query 1; Y4,Y5 query 2; Y6,Y7 query 3.
#define STEP4X2 \
	VMOVUPS     (DI), Y8         \
	VMOVUPS     (DI)(BX*1), Y9   \
	VMOVUPS     (SI), Y10        \
	VFMADD231PS Y10, Y8, Y0      \
	VFMADD231PS Y10, Y9, Y1      \
	VMOVUPS     (SI)(BX*1), Y11  \
	VFMADD231PS Y11, Y8, Y2      \
	VFMADD231PS Y11, Y9, Y3      \
	VMOVUPS     (SI)(BX*2), Y12  \
	VFMADD231PS Y12, Y8, Y4      \
	VFMADD231PS Y12, Y9, Y5      \
	VMOVUPS     (R10), Y13       \
	VFMADD231PS Y13, Y8, Y6      \
	VFMADD231PS Y13, Y9, Y7      \
	ADDQ        $32, SI          \
	ADDQ        $32, R10         \
	ADDQ        $32, DI

// func dot4AVX2(q []float32, r []float32, nrows int, dim int, out []float32, ldo int, next *float32)
//
// As dot4AVX512 with 8-float vectors and a tile of four queries by two rows
// (sixteen registers hold eight accumulators); a step reads one cache line
// of rows and prefetches one.
//
// Registers: SI, R10 query 0 and 3 (1 and 2 at SI+BX, SI+2*BX); DI row 0 of
// the tile (row 1 at DI+BX); BX the vector stride in bytes; R12 the queries'
// start; R13 the tile's first row; CX rows left; R11 steps left; DX the
// prefetch pointer (0: none); AX dim%8 and Y15 its tail mask; R8, R14 the
// output for queries 0 and 3; R9 ldo in bytes.
TEXT ·dot4AVX2(SB), NOSPLIT, $0-104
	MOVQ q_base+0(FP), R12
	MOVQ r_base+24(FP), R13
	MOVQ nrows+48(FP), CX
	MOVQ dim+56(FP), BX
	MOVQ out_base+64(FP), R8
	MOVQ ldo+88(FP), R9
	SHLQ $2, R9
	LEAQ (R8)(R9*2), R14
	ADDQ R9, R14

	MOVQ    BX, AX
	ANDQ    $7, AX
	MOVQ    $8, DX
	SUBQ    AX, DX
	LEAQ    tailmask<>(SB), R11
	VMOVDQU (R11)(DX*4), Y15
	MOVQ    next+96(FP), DX

	SHLQ  $2, BX
	TESTQ CX, CX
	JEQ   done2

tile2:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   R12, SI
	LEAQ   (SI)(BX*2), R10
	ADDQ   BX, R10
	MOVQ   R13, DI
	MOVQ   dim+56(FP), R11
	SHRQ   $3, R11
	JEQ    tail2
	TESTQ  DX, DX
	JNE    steppf2

step2:
	STEP4X2
	DECQ R11
	JNE  step2
	JMP  tail2

steppf2:
	PREFETCHT1 (DX)
	ADDQ       $64, DX
	STEP4X2
	DECQ       R11
	JNE        steppf2

tail2:
	TESTQ       AX, AX
	JEQ         reduce2
	VMASKMOVPS  (DI), Y15, Y8
	VMASKMOVPS  (DI)(BX*1), Y15, Y9
	VMASKMOVPS  (SI), Y15, Y10
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y10, Y9, Y1
	VMASKMOVPS  (SI)(BX*1), Y15, Y11
	VFMADD231PS Y11, Y8, Y2
	VFMADD231PS Y11, Y9, Y3
	VMASKMOVPS  (SI)(BX*2), Y15, Y12
	VFMADD231PS Y12, Y8, Y4
	VFMADD231PS Y12, Y9, Y5
	VMASKMOVPS  (R10), Y15, Y13
	VFMADD231PS Y13, Y8, Y6
	VFMADD231PS Y13, Y9, Y7

reduce2:
	// hadd(a,b) per 128-bit lane is [a0+a1, a2+a3, b0+b1, b2+b3]; two rounds
	// give each accumulator's per-lane sum, and adding the two lanes gives
	// [q0r0, q0r1, q1r0, q1r1, q2r0, q2r1, q3r0, q3r1].
	VHADDPS    Y1, Y0, Y8
	VHADDPS    Y3, Y2, Y9
	VHADDPS    Y5, Y4, Y10
	VHADDPS    Y7, Y6, Y11
	VHADDPS    Y9, Y8, Y8
	VHADDPS    Y11, Y10, Y10
	VPERM2F128 $0x20, Y10, Y8, Y9
	VPERM2F128 $0x31, Y10, Y8, Y11
	VADDPS     Y11, Y9, Y8

	VMOVLPS      X8, (R8)
	VMOVHPS      X8, (R8)(R9*1)
	VEXTRACTF128 $1, Y8, X9
	VMOVLPS      X9, (R8)(R9*2)
	VMOVHPS      X9, (R14)
	ADDQ         $8, R8
	ADDQ         $8, R14

	LEAQ (R13)(BX*2), R13
	SUBQ $2, CX
	JNE  tile2

done2:
	VZEROUPPER
	RET

// func dot1AVX512(q []float32, r []float32, nrows int, dim int, out []float32)
//
// out[j] = q · r[j], nrows a multiple of 4. Registers: SI the query; DI, R11
// rows 0 and 3 of the tile (1 and 2 at DI+BX, DI+2*BX); BX the stride in
// bytes; R12 the query's start; R13 the tile's first row; CX rows left; DX
// dim/16; K1 the tail mask; R8 the output. Z0..Z3 accumulate rows 0..3.
TEXT ·dot1AVX512(SB), NOSPLIT, $0-88
	MOVQ q_base+0(FP), R12
	MOVQ r_base+24(FP), R13
	MOVQ dim+56(FP), BX
	MOVQ out_base+64(FP), R8

	MOVQ BX, CX
	ANDQ $15, CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	MOVQ nrows+48(FP), CX

	MOVQ  BX, DX
	SHRQ  $4, DX
	SHLQ  $2, BX
	TESTQ CX, CX
	JEQ   done1

tile1:
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	MOVQ   R12, SI
	MOVQ   R13, DI
	LEAQ   (DI)(BX*2), R11
	ADDQ   BX, R11
	MOVQ   DX, AX
	TESTQ  AX, AX
	JEQ    tail1

step1:
	VMOVUPS     (SI), Z16
	VFMADD231PS (DI), Z16, Z0
	VFMADD231PS (DI)(BX*1), Z16, Z1
	VFMADD231PS (DI)(BX*2), Z16, Z2
	VFMADD231PS (R11), Z16, Z3
	ADDQ        $64, SI
	ADDQ        $64, DI
	ADDQ        $64, R11
	DECQ        AX
	JNE         step1

tail1:
	KORTESTW    K1, K1
	JEQ         reduce1
	VMOVUPS.Z   (SI), K1, Z16
	VMOVUPS.Z   (DI), K1, Z17
	VMOVUPS.Z   (DI)(BX*1), K1, Z18
	VMOVUPS.Z   (DI)(BX*2), K1, Z19
	VMOVUPS.Z   (R11), K1, Z20
	VFMADD231PS Z17, Z16, Z0
	VFMADD231PS Z18, Z16, Z1
	VFMADD231PS Z19, Z16, Z2
	VFMADD231PS Z20, Z16, Z3

reduce1:
	// As in dot4AVX512: Z0 lane k = 4-float partial sums of row k.
	VSHUFF32X4 $0x44, Z1, Z0, Z16
	VSHUFF32X4 $0xEE, Z1, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VSHUFF32X4 $0x44, Z3, Z2, Z16
	VSHUFF32X4 $0xEE, Z3, Z2, Z17
	VADDPS     Z17, Z16, Z1
	VSHUFF32X4 $0x88, Z1, Z0, Z16
	VSHUFF32X4 $0xDD, Z1, Z0, Z17
	VADDPS     Z17, Z16, Z0
	VEXTRACTF32X4 $1, Z0, X1
	VEXTRACTF32X4 $2, Z0, X2
	VEXTRACTF32X4 $3, Z0, X3
	VHADDPS       X1, X0, X0
	VHADDPS       X3, X2, X2
	VHADDPS       X2, X0, X0
	VMOVUPS       X0, (R8)
	ADDQ          $16, R8

	LEAQ (R13)(BX*4), R13
	SUBQ $4, CX
	JNE  tile1

done1:
	VZEROUPPER
	RET

// func dot1AVX2(q []float32, r []float32, nrows int, dim int, out []float32)
//
// As dot1AVX512 with 8-float vectors; Y15 is the tail mask and AX dim%8.
TEXT ·dot1AVX2(SB), NOSPLIT, $0-88
	MOVQ q_base+0(FP), R12
	MOVQ r_base+24(FP), R13
	MOVQ nrows+48(FP), CX
	MOVQ dim+56(FP), BX
	MOVQ out_base+64(FP), R8

	MOVQ    BX, AX
	ANDQ    $7, AX
	MOVQ    $8, DX
	SUBQ    AX, DX
	LEAQ    tailmask<>(SB), R11
	VMOVDQU (R11)(DX*4), Y15

	MOVQ  BX, DX
	SHRQ  $3, DX
	SHLQ  $2, BX
	TESTQ CX, CX
	JEQ   done1x2

tile1x2:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   R12, SI
	MOVQ   R13, DI
	LEAQ   (DI)(BX*2), R11
	ADDQ   BX, R11
	MOVQ   DX, R10
	TESTQ  R10, R10
	JEQ    tail1x2

step1x2:
	VMOVUPS     (SI), Y8
	VFMADD231PS (DI), Y8, Y0
	VFMADD231PS (DI)(BX*1), Y8, Y1
	VFMADD231PS (DI)(BX*2), Y8, Y2
	VFMADD231PS (R11), Y8, Y3
	ADDQ        $32, SI
	ADDQ        $32, DI
	ADDQ        $32, R11
	DECQ        R10
	JNE         step1x2

tail1x2:
	TESTQ       AX, AX
	JEQ         reduce1x2
	VMASKMOVPS  (SI), Y15, Y8
	VMASKMOVPS  (DI), Y15, Y9
	VMASKMOVPS  (DI)(BX*1), Y15, Y10
	VMASKMOVPS  (DI)(BX*2), Y15, Y11
	VMASKMOVPS  (R11), Y15, Y12
	VFMADD231PS Y9, Y8, Y0
	VFMADD231PS Y10, Y8, Y1
	VFMADD231PS Y11, Y8, Y2
	VFMADD231PS Y12, Y8, Y3

reduce1x2:
	VHADDPS      Y1, Y0, Y0
	VHADDPS      Y3, Y2, Y2
	VHADDPS      Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVUPS      X0, (R8)
	ADDQ         $16, R8

	LEAQ (R13)(BX*4), R13
	SUBQ $4, CX
	JNE  tile1x2

done1x2:
	VZEROUPPER
	RET
