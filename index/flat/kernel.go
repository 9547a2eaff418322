package flat

// dot4Func computes the 4×nrows block of dot products
//
//	out[i*ldo+j] = q[i*dim:(i+1)*dim] · r[j*dim:(j+1)*dim],  i < 4, j < nrows
//
// for nrows a multiple of 4. The caller guarantees len(q) >= 4*dim,
// len(r) >= nrows*dim and len(out) >= 3*ldo+nrows (checkDot4 panics
// otherwise, before any assembly runs). If next is not nil, the kernel may
// prefetch the nrows*dim floats that start there (the next row block) into
// the cache while it computes; prefetches never fault.
type dot4Func func(q, r []float32, nrows, dim int, out []float32, ldo int, next *float32)

// dot1Func computes out[j] = q[:dim] · r[j*dim:(j+1)*dim] for j < nrows,
// nrows a multiple of 4, with len(q) >= dim, len(r) >= nrows*dim and
// len(out) >= nrows (checkDot1 panics otherwise).
type dot1Func func(q, r []float32, nrows, dim int, out []float32)

// kernel is one implementation of the two kernel functions and the name
// tests and benchmarks know it by. dot1 serves a lone query: the Q=1 scan
// is bound by memory bandwidth, and padding it to four queries would
// quadruple the arithmetic done while waiting for it.
type kernel struct {
	name string
	dot4 dot4Func
	dot1 dot1Func
}

// goKernel is the portable kernel: plain Go, four queries by one row per
// step with four independent float32 accumulators.
var goKernel = kernel{"go", dot4Go, dot1Go}

// kernels lists the kernels this CPU can run, fastest first; kernels[0] is
// the one Search uses.
var kernels = append(asmKernels(), goKernel)

// active is the kernel Search uses; tests swap it to compare implementations.
var active = kernels[0]

func checkDot4(q, r []float32, nrows, dim int, out []float32, ldo int) {
	if nrows%4 != 0 || len(q) < 4*dim || len(r) < nrows*dim || ldo < nrows || len(out) < 3*ldo+nrows {
		panic("embedd/index/flat: kernel arguments out of range")
	}
}

func dot4Go(q, r []float32, nrows, dim int, out []float32, ldo int, _ *float32) {
	checkDot4(q, r, nrows, dim, out, ldo)
	q0, q1, q2, q3 := q[:dim], q[dim:2*dim], q[2*dim:3*dim], q[3*dim:4*dim]
	for j := range nrows {
		row := r[j*dim : (j+1)*dim]
		var s0, s1, s2, s3 float32
		for d, x := range row {
			s0 += q0[d] * x
			s1 += q1[d] * x
			s2 += q2[d] * x
			s3 += q3[d] * x
		}
		out[j], out[ldo+j], out[2*ldo+j], out[3*ldo+j] = s0, s1, s2, s3
	}
}

func checkDot1(q, r []float32, nrows, dim int, out []float32) {
	if nrows%4 != 0 || len(q) < dim || len(r) < nrows*dim || len(out) < nrows {
		panic("embedd/index/flat: kernel arguments out of range")
	}
}

func dot1Go(q, r []float32, nrows, dim int, out []float32) {
	checkDot1(q, r, nrows, dim, out)
	q = q[:dim]
	for j := range nrows {
		row := r[j*dim : (j+1)*dim]
		var s0, s1, s2, s3 float32
		d := 0
		for ; d+4 <= dim; d += 4 {
			s0 += q[d] * row[d]
			s1 += q[d+1] * row[d+1]
			s2 += q[d+2] * row[d+2]
			s3 += q[d+3] * row[d+3]
		}
		for ; d < dim; d++ {
			s0 += q[d] * row[d]
		}
		out[j] = (s0 + s1) + (s2 + s3)
	}
}
