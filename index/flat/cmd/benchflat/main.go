// Command benchflat is the embedd half of scripts/bench_search_vs_faiss.sh:
// it times flat.Search on the data the script's Python half wrote, compares
// the hits with FAISS's and prints one line per case next to FAISS's time.
//
// Usage:
//
//	benchflat -dir DIR
//
// DIR holds base.f32 (1,000,000×384 unit vectors; the 100k case is its
// first 100,000 rows), queries.f32 (1,024×384), and for each case
// faiss_N_Q.ids, faiss_N_Q.scores and a line "N Q SECONDS" in
// faiss_times.txt.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/embedd/embedd/index/flat"
)

const (
	dim = 384
	k   = 10
	// scoreTie is how close a hit's score must be to FAISS's 10th score to
	// count as a tie when its row is not among FAISS's: the two sum in
	// different orders, so equal scores can differ in the last bits.
	scoreTie = 1e-6
)

var (
	sizes = []int{100_000, 1_000_000}
	qs    = []int{1, 16, 1024}
)

func main() {
	dir := flag.String("dir", "", "folder the Python half wrote")
	flag.Parse()
	if *dir == "" {
		log.Fatal("benchflat: -dir is required")
	}
	base := readFloats(filepath.Join(*dir, "base.f32"))
	queries := readFloats(filepath.Join(*dir, "queries.f32"))
	faissTimes := readTimes(filepath.Join(*dir, "faiss_times.txt"))

	fmt.Printf("%-9s %5s %11s %11s %11s %11s %7s %9s %9s %s\n",
		"n", "Q", "faiss_s", "faiss_q/s", "embedd_s", "embedd_q/s", "ratio", "recall", "ids_same", "scan")
	for _, n := range sizes {
		m := flat.Matrix{Data: base[:n*dim], Dim: dim}
		for _, q := range qs {
			var hits [][]flat.Hit
			secs := timedRuns(func() {
				var err error
				hits, err = flat.Search(context.Background(), m, queries[:q*dim], k, flat.Options{Metric: flat.Dot})
				if err != nil {
					log.Fatal(err)
				}
			})
			name := fmt.Sprintf("faiss_%d_%d", n, q)
			ids := readInts(filepath.Join(*dir, name+".ids"))
			scores := readFloats(filepath.Join(*dir, name+".scores"))
			recall, same := compare(hits, ids, scores)
			fs := faissTimes[[2]int{n, q}]
			scan := ""
			if q == 1 {
				scan = fmt.Sprintf("%.1f GB/s", float64(n*dim*4)/secs/1e9)
			}
			fmt.Printf("%-9d %5d %11.4f %11.1f %11.4f %11.1f %6.2fx %9.4f %9.4f %s\n",
				n, q, fs, float64(q)/fs, secs, float64(q)/secs, fs/secs, recall, same, scan)
		}
	}
}

// timedRuns times f as the Python half times FAISS: one warm-up run, then
// runs until 2 s have passed (at least 3), the median; a single run if it
// takes more than 2 s.
func timedRuns(f func()) float64 {
	t0 := time.Now()
	f()
	if d := time.Since(t0).Seconds(); d > 2 {
		return d
	}
	var times []float64
	for total := 0.0; len(times) < 3 || total < 2; {
		t0 := time.Now()
		f()
		d := time.Since(t0).Seconds()
		times = append(times, d)
		total += d
	}
	sort.Float64s(times)
	return times[len(times)/2]
}

// compare returns recall@k of hits against FAISS's answer, counting a row
// FAISS did not return as found when its score ties FAISS's k-th score
// (within scoreTie), and the fraction of rows that are the same exactly.
func compare(hits [][]flat.Hit, ids []int64, scores []float32) (recall, same float64) {
	var found, equal int
	for i, hs := range hits {
		want := ids[i*k : (i+1)*k]
		kth := scores[(i+1)*k-1]
		for _, h := range hs {
			switch {
			case slices.Contains(want, int64(h.Row)):
				found++
				equal++
			case h.Score >= kth-scoreTie:
				found++
			}
		}
	}
	total := float64(len(hits) * k)
	return float64(found) / total, float64(equal) / total
}

func readFloats(path string) []float32 {
	b, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	if _, err := binary.Decode(b, binary.LittleEndian, v); err != nil {
		log.Fatal(err)
	}
	return v
}

func readInts(path string) []int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	v := make([]int64, len(b)/8)
	if _, err := binary.Decode(b, binary.LittleEndian, v); err != nil {
		log.Fatal(err)
	}
	return v
}

func readTimes(path string) map[[2]int]float64 {
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	t := map[[2]int]float64{}
	for {
		var n, q int
		var s float64
		if _, err := fmt.Fscan(f, &n, &q, &s); err != nil {
			break
		}
		t[[2]int{n, q}] = s
	}
	return t
}
