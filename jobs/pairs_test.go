package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/embedd/embedd/index/flat"
)

// writeVectors writes n JSONL vector records of dimension dim (the last a
// copy of the first, so dedup has a group), a bad line after them, and
// returns the path and the vectors, normalised.
func writeVectors(t *testing.T, seed uint64, n, dim int) (string, [][]float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	var b strings.Builder
	var vs [][]float64
	var first []float64
	for i := range n {
		v := make([]float64, dim)
		if i == n-1 {
			copy(v, first)
		} else {
			for j := range v {
				v[j] = float64(float32(rng.NormFloat64()))
			}
		}
		if i == 0 {
			first = v
		}
		line, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("v%d", i), "vector": v})
		b.Write(append(line, '\n'))
		var norm float64
		for _, x := range v {
			norm += x * x
		}
		u := make([]float64, dim)
		for j := range v {
			u[j] = v[j] / math.Sqrt(norm)
		}
		vs = append(vs, u)
	}
	b.WriteString("{\"id\":\"bad\",\"vector\":[1,2]}\n")
	path := filepath.Join(t.TempDir(), "v.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, vs
}

func cos(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func vectorInput(path string) *PairsInput {
	return &PairsInput{Input: Input{Path: path, Vectors: true}}
}

// naiveNeighbours are row i's k best other rows of b, as ids.
func naiveNeighbours(a, b [][]float64, i, k int, self bool) []string {
	type hit struct {
		j int
		s float64
	}
	var hs []hit
	for j := range b {
		if !self || j != i {
			hs = append(hs, hit{j, cos(a[i], b[j])})
		}
	}
	slices.SortStableFunc(hs, func(x, y hit) int {
		switch {
		case x.s > y.s:
			return -1
		case x.s < y.s:
			return 1
		}
		return x.j - y.j
	})
	var ids []string
	for _, h := range hs[:k] {
		ids = append(ids, fmt.Sprintf("v%d", h.j))
	}
	return ids
}

func neighbourIDs(t *testing.T, path string) [][]string {
	t.Helper()
	var out [][]string
	for _, l := range strings.Split(strings.TrimSpace(string(readFile(t, path))), "\n") {
		var r struct {
			Neighbors []struct{ ID string }
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, n := range r.Neighbors {
			ids = append(ids, n.ID)
		}
		out = append(out, ids)
	}
	return out
}

func TestPairsTopK(t *testing.T) {
	a, va := writeVectors(t, 1, 300, 12)
	b, vb := writeVectors(t, 2, 170, 12)
	dir := t.TempDir()
	for _, self := range []bool{true, false} {
		out := filepath.Join(dir, fmt.Sprintf("nb-%v.jsonl", self))
		p := PairsJob{Input: vectorInput(a), Metric: flat.Cosine, K: 4, Output: Output{Path: out, ErrorsPath: out + ".errors"}}
		other := va
		if !self {
			p.Against, other = vectorInput(b), vb
		}
		tot, err := RunPairs(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if tot.RowsA != 300 || tot.Failed == 0 {
			t.Fatalf("totals %+v: want 300 rows and the bad line failed", tot)
		}
		got := neighbourIDs(t, out)
		for i := range va {
			if want := naiveNeighbours(va, other, i, 4, self); !slices.Equal(got[i], want) {
				t.Fatalf("self=%v row %d: %v, want %v", self, i, got[i], want)
			}
		}
		if !strings.Contains(string(readFile(t, out+".errors.a")), "2 dimensions, the first vector has 12") {
			t.Fatalf("error file: %s", readFile(t, out+".errors.a"))
		}
	}
}

func TestPairsThresholdDedupAndResume(t *testing.T) {
	in, vs := writeVectors(t, 3, 400, 6)
	dir := t.TempDir()
	const thr = 0.8
	var want []string
	for i := range vs {
		for j := i + 1; j < len(vs); j++ {
			if cos(vs[i], vs[j]) >= thr {
				want = append(want, fmt.Sprintf("v%d v%d", i, j))
			}
		}
	}
	run := func(jd, out string, o PairsJob) PairsTotals {
		t.Helper()
		o.Input, o.Metric, o.Threshold, o.Dir, o.Output, o.BlockRows = vectorInput(in), flat.Cosine, thr, jd, Output{Path: out}, 64
		tot, err := RunPairs(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return tot
	}
	jd := filepath.Join(dir, "job")
	out := filepath.Join(dir, "pairs.jsonl")
	tot := run(jd, out, PairsJob{})
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(readFile(t, out))), "\n") {
		var p struct{ A, B string }
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatal(err)
		}
		got = append(got, p.A+" "+p.B)
	}
	if len(want) < 50 || !slices.Equal(got, want) || tot.Pairs != int64(len(want)) || tot.Capped {
		t.Fatalf("%d pairs (%+v), want %d", len(got), tot, len(want))
	}
	// Remove some blocks: a rerun computes those again, the same bytes.
	parts, _ := filepath.Glob(filepath.Join(jd, "pairs", "part-*"))
	if len(parts) < 3 {
		t.Fatalf("%d pairs blocks; the test wants several", len(parts))
	}
	for _, p := range parts[1:3] {
		os.Remove(p)
	}
	first := readFile(t, out)
	os.Remove(out)
	run(jd, out, PairsJob{})
	if !bytes.Equal(readFile(t, out), first) {
		t.Fatal("resumed threshold join wrote other bytes")
	}
	capped := run(filepath.Join(dir, "capped"), filepath.Join(dir, "capped.jsonl"), PairsJob{MaxPairs: 10})
	if n := strings.Count(string(readFile(t, filepath.Join(dir, "capped.jsonl"))), "\n"); !capped.Capped || n != 10 {
		t.Fatalf("MaxPairs 10: %d lines, capped %v", n, capped.Capped)
	}
	groups := filepath.Join(dir, "groups.jsonl")
	run(filepath.Join(dir, "dedup"), groups, PairsJob{Dedup: true})
	// The last row copies the first: with the pairs above 0.8 the groups
	// are the connected components, each kept by its first row.
	if g := string(readFile(t, groups)); !strings.HasPrefix(g, `{"keep":"v0","duplicates":[`) || !strings.Contains(g, `"v399"`) {
		t.Fatalf("groups:\n%s", g)
	}
}

func TestPairsOverNPY(t *testing.T) {
	in := writeInput(t, 500)
	dir := t.TempDir()
	npy := reference(t, in, Output{Path: filepath.Join(dir, "x.npy")})
	out := filepath.Join(dir, "nb.jsonl")
	_, err := RunPairs(context.Background(), PairsJob{Input: &PairsInput{Input: Input{Path: npy}, IDsPath: npy + ".ids"}, Metric: flat.Dot, K: 2, Output: Output{Path: out}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(readFile(t, out))), "\n")
	if len(lines) < 480 || !strings.HasPrefix(lines[0], `{"id":"1","neighbors":[{"id":"`) {
		t.Fatalf("%d lines, first %q", len(lines), lines[0])
	}
	if _, err := RunPairs(context.Background(), PairsJob{Input: &PairsInput{Input: Input{Path: npy}}, Metric: flat.Cosine, K: 2, Output: Output{Path: out}}); err == nil || !strings.Contains(err.Error(), "unit rows") {
		t.Fatalf("cosine over an .npy of non-unit rows: %v", err)
	}
}
