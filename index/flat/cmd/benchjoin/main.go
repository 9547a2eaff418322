// Command benchjoin is the kernel half of scripts/bench_pairs_vs_faiss.sh:
// on one .npy of unit vectors it times the top-k self-join
// (flat.SelfJoin) against the same answer through flat.Search (every row a
// query, k+1, minus itself), checks that the two agree, and prints both
// times and their ratio.
//
// Usage:
//
//	benchjoin -npy FILE [-k 10] [-block ROWS]
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"os"
	"time"
	"unsafe"

	"github.com/embedd/embedd/index/flat"
)

func main() {
	path := flag.String("npy", "", "a 2-D little-endian float32 .npy of unit rows (version 1 header)")
	k := flag.Int("k", 10, "neighbours per row")
	block := flag.Int("block", 0, "rows per block of the self-join (0: the package's choice)")
	flag.Parse()
	b, err := os.ReadFile(*path)
	if err != nil {
		log.Fatal(err)
	}
	hl := int(binary.LittleEndian.Uint16(b[8:10]))
	var rows, dim int
	if _, err := fmt.Sscanf(string(b[10:10+hl]), "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", &rows, &dim); err != nil {
		log.Fatalf("header %q: %v", b[10:10+hl], err)
	}
	data := unsafe.Slice((*float32)(unsafe.Pointer(&b[10+hl])), rows*dim)
	m := flat.Matrix{Data: data, Dim: dim}
	ctx := context.Background()

	t0 := time.Now()
	join, err := flat.SelfJoin(ctx, m, flat.JoinOptions{Metric: flat.Dot, K: *k, BlockRows: *block})
	if err != nil {
		log.Fatal(err)
	}
	tJoin := time.Since(t0)
	t0 = time.Now()
	search, err := flat.Search(ctx, m, data, *k+1, flat.Options{Metric: flat.Dot})
	if err != nil {
		log.Fatal(err)
	}
	tSearch := time.Since(t0)

	same, rowsSame := 0, 0
	for i := range rows {
		var want []int
		for _, h := range search[i] {
			if h.Row != i && len(want) < *k {
				want = append(want, h.Row)
			}
		}
		in := map[int]bool{}
		for _, r := range want {
			in[r] = true
		}
		all := true
		for _, h := range join[i] {
			if in[h.Row] {
				same++
			} else {
				all = false
			}
		}
		if all {
			rowsSame++
		}
	}
	pairs := float64(rows) * float64(rows-1) / 2
	fmt.Printf("kernel self-join top-%d: %.2f s (%.3g pairs/s)\n", *k, tJoin.Seconds(), pairs/tJoin.Seconds())
	fmt.Printf("kernel search, every row a query, k=%d: %.2f s (%.3g pairs/s)\n", *k+1, tSearch.Seconds(), pairs/tSearch.Seconds())
	fmt.Printf("self-join / search throughput: %.2f×\n", tSearch.Seconds()/tJoin.Seconds())
	fmt.Printf("agreement: %.6f of neighbours, %d of %d rows identical\n", float64(same)/float64(rows**k), rowsSame, rows)
}
