package gpusearch

// Streaming: a collection whose device copy would exceed the Backend's
// device budget is not kept on the device; each search streams its rows
// from host memory in chunks (see Backend.searchStreamed). The plan and
// the merge are pure functions, tested on the CPU.

// streamChunkBytes bounds one streamed chunk of rows (in the storage
// format); two such chunks are in flight, on the host (pinned) and on the
// device.
const streamChunkBytes = 64 << 20

// defaultBudgetFraction of the device memory free at New is the default
// device budget of one collection's resident copy.
const defaultBudgetFraction = 0.8

// fitsResident reports whether a resident copy of n rows of dim elements
// of elem bytes, and its float32 bias vector, fits within budget bytes.
func fitsResident(n, dim, elem int, budget int64) bool {
	return int64(n)*int64(dim*elem+4) <= budget
}

// chunkRows returns the rows of one streamed chunk for rows of dim
// elements of elem bytes: as many as keep one chunk and its float32 bias
// within maxBytes and the two device chunks (double buffering) within
// budget; at least 1.
func chunkRows(dim, elem, maxBytes int, budget int64) int {
	per := dim*elem + 4
	c := maxBytes / per
	if b := budget / int64(2*per); b < int64(c) {
		c = int(b)
	}
	return max(c, 1)
}

// better reports whether a ranks before b: higher score, ties by smaller
// row (flat's order).
func better(a, b candidate) bool {
	return a.score > b.score || a.score == b.score && a.row < b.row
}

// mergeTop merges two best-first candidate lists (no padding) into the k
// best of both, best first, ties by smaller row. It reuses neither input.
func mergeTop(a, b []candidate, k int) []candidate {
	out := make([]candidate, 0, min(k, len(a)+len(b)))
	i, j := 0, 0
	for len(out) < k && (i < len(a) || j < len(b)) {
		if j == len(b) || i < len(a) && better(a[i], b[j]) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}

// chunkCandidates turns one chunk's device top-k for one query (rows
// local to the chunk, -1 for padding) into global rows, dropping padding.
func chunkCandidates(c []candidate, first int) []candidate {
	out := make([]candidate, 0, len(c))
	for _, x := range c {
		if x.row >= 0 {
			out = append(out, candidate{row: x.row + int32(first), score: x.score})
		}
	}
	return out
}
