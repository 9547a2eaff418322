// Top-k selection, compiled at run time by NVRTC (see topk.go; the Go model of this
// kernel, ported line by line, is simTopKChunk in topk_sim_test.go).
//
// One launch is one pass: block (c, q) takes chunk c (chunk elements, a power of
// two, at least 2k) of query q's row of len candidates, sorts it in shared memory by
// (score descending, index ascending) with a bitonic sort, and writes its first k to
// output row q at [c*k, c*k+k). Positions past the end of the row are padded with the
// sentinel (-inf, INT_MAX), which sorts after every real element. Passes repeat on
// their own output until one chunk is left; in that final pass the sentinel's index
// is written as -1.
//
// Order: a is better than b when a.score > b.score, or the scores are equal and
// a.index < b.index. NaN scores have no defined place.

#define TOPK_SENTINEL_IDX 0x7fffffff

__device__ __forceinline__ bool topk_better(float as, int ai, float bs, int bi) {
    return as > bs || (as == bs && ai < bi);
}

// __launch_bounds__(1024): topk.go launches up to 1024 threads per block
// (topkMaxThreads), and without the bound the compiler may give each thread more
// registers than a 1024-thread block can have (cudaErrorLaunchOutOfResources).
extern "C" __global__ void __launch_bounds__(1024) topk_chunk(
    const float* __restrict__ in_vals, // [q][in_stride]
    const int* __restrict__ in_idx,    // [q][in_stride], or NULL: index = position
    int len,                           // candidates per query row
    long long in_stride,               // elements between query rows of the input
    int k,                             // results per chunk
    int chunk,                         // power of two, >= 2k (and >= 2)
    float* __restrict__ out_vals,      // [q][out_stride]
    int* __restrict__ out_idx,         // [q][out_stride]
    long long out_stride,              // elements between query rows of the output
    int final_pass)                    // nonzero: write the sentinel index as -1
{
    extern __shared__ unsigned char smem[];
    float* sv = (float*)smem;
    int* si = (int*)(sv + chunk);

    const int q = blockIdx.y;
    const int c = blockIdx.x;
    const long long start = (long long)c * chunk;
    long long rem = (long long)len - start;
    const int cnt = rem < chunk ? (int)rem : chunk;
    const float* rv = in_vals + (long long)q * in_stride + start;
    const int* ri = in_idx ? in_idx + (long long)q * in_stride + start : 0;

    // Load the chunk, padding with the sentinel.
    for (int i = threadIdx.x; i < chunk; i += blockDim.x) {
        if (i < cnt) {
            sv[i] = rv[i];
            si[i] = ri ? ri[i] : (int)(start + i);
        } else {
            sv[i] = -__int_as_float(0x7f800000); // -inf
            si[i] = TOPK_SENTINEL_IDX;
        }
    }

    // Bitonic sort, best first.
    for (int size = 2; size <= chunk; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            __syncthreads();
            for (int t = threadIdx.x; t < (chunk >> 1); t += blockDim.x) {
                int lo = 2 * t - (t & (stride - 1));
                int hi = lo + stride;
                bool best_first = (lo & size) == 0;
                float ls = sv[lo], hs = sv[hi];
                int li = si[lo], hi_i = si[hi];
                bool swap = best_first ? topk_better(hs, hi_i, ls, li)
                                       : topk_better(ls, li, hs, hi_i);
                if (swap) {
                    sv[lo] = hs; si[lo] = hi_i;
                    sv[hi] = ls; si[hi] = li;
                }
            }
        }
    }
    __syncthreads();

    // Write the first k.
    float* ov = out_vals + (long long)q * out_stride + (long long)c * k;
    int* oi = out_idx + (long long)q * out_stride + (long long)c * k;
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        int idx = si[i];
        ov[i] = sv[i];
        oi[i] = (final_pass && idx == TOPK_SENTINEL_IDX) ? -1 : idx;
    }
}
