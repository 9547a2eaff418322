package index

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestSearchMatchesBruteForce(t *testing.T) {
	for _, metric := range []Metric{Cosine, Dot, L2} {
		t.Run(metric.String(), func(t *testing.T) {
			const dim, n = 16, 500
			c := testCollection(t, dim, metric)
			rng := rand.New(rand.NewPCG(3, uint64(metric)))
			random := func() []float32 {
				v := make([]float32, dim)
				for j := range v {
					v[j] = rng.Float32()*2 - 1
				}
				return v
			}
			stored := map[string][]float64{}
			var recs []Record
			for i := range n {
				v := random()
				id := fmt.Sprintf("r%03d", i)
				recs = append(recs, rec(id, v))
				stored[id] = unit(v, metric == Cosine)
			}
			mustUpsert(t, c, recs...)
			// Delete some: they must never come back.
			var gone []string
			for i := 0; i < n; i += 7 {
				gone = append(gone, fmt.Sprintf("r%03d", i))
				delete(stored, fmt.Sprintf("r%03d", i))
			}
			if _, err := c.Delete(context.Background(), gone); err != nil {
				t.Fatal(err)
			}
			queries := [][]float32{random(), random(), random()}
			got, err := c.Search(context.Background(), queries, 10, SearchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for qi, q := range queries {
				want := bruteForce(stored, unit(q, metric == Cosine), metric, 10)
				if len(got[qi]) != 10 {
					t.Fatalf("query %d: %d results", qi, len(got[qi]))
				}
				for i, r := range got[qi] {
					if r.ID != want[i].ID || math.Abs(float64(r.Score-want[i].Score)) > 1e-4 {
						t.Fatalf("query %d rank %d: %s %v, want %s %v", qi, i, r.ID, r.Score, want[i].ID, want[i].Score)
					}
				}
			}
		})
	}
}

func unit(v []float32, normalise bool) []float64 {
	out := make([]float64, len(v))
	var s float64
	for j, x := range v {
		out[j] = float64(x)
		s += out[j] * out[j]
	}
	if normalise {
		for j := range out {
			out[j] /= math.Sqrt(s)
		}
	}
	return out
}

func bruteForce(rows map[string][]float64, q []float64, metric Metric, k int) []Result {
	var all []Result
	for id, x := range rows {
		var s float64
		for j := range x {
			if metric == L2 {
				s += (q[j] - x[j]) * (q[j] - x[j])
			} else {
				s += q[j] * x[j]
			}
		}
		all = append(all, Result{ID: id, Score: float32(s)})
	}
	slices.SortFunc(all, func(a, b Result) int {
		c := cmp.Compare(b.Score, a.Score)
		if metric == L2 {
			c = -c
		}
		if c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return all[:min(k, len(all))]
}

func TestSearchTiesInRowOrderAndFewerRowsThanK(t *testing.T) {
	c := testCollection(t, 2, Dot)
	mustUpsert(t, c, rec("b", []float32{1, 0}), rec("c", []float32{1, 0}), rec("a", []float32{1, 0}), rec("z", []float32{0, 1}))
	got, err := c.Search(context.Background(), [][]float32{{1, 0}}, 10, SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range got[0] {
		order = append(order, r.ID)
	}
	if !slices.Equal(order, []string{"b", "c", "a", "z"}) {
		t.Fatalf("order %v, want equal scores in write order", order)
	}
}

func TestSearchFilter(t *testing.T) {
	c := testCollection(t, 2, Dot)
	mustUpsert(t, c,
		Record{ID: "en1", Vector: []float32{1, 0}, Metadata: []byte(`{"lang": "en", "n": 5, "ok": true, "tag": null}`), MetadataJSON: true},
		Record{ID: "en2", Vector: []float32{0.5, 0}, Metadata: []byte(`{"lang":"en","n":6}`), MetadataJSON: true},
		Record{ID: "fr", Vector: []float32{0.9, 0}, Metadata: []byte(`{"lang":"fr","n":5}`), MetadataJSON: true},
		Record{ID: "raw", Vector: []float32{1, 0}, Metadata: []byte(`{"lang":"en"}`)}, // bytes, not JSON
		rec("none", []float32{1, 0}),
	)
	cases := []struct {
		filter map[string]string
		want   []string
	}{
		{nil, []string{"en1", "raw", "none", "fr", "en2"}},
		{map[string]string{"lang": "en"}, []string{"en1", "en2"}},
		{map[string]string{"n": "5"}, []string{"en1", "fr"}},
		{map[string]string{"lang": "en", "n": "5"}, []string{"en1"}},
		{map[string]string{"ok": "true"}, []string{"en1"}},
		{map[string]string{"tag": "null"}, []string{"en1"}},
		{map[string]string{"missing": "x"}, nil},
	}
	for _, tc := range cases {
		got, err := c.Search(context.Background(), [][]float32{{1, 0}}, 10, SearchOptions{Filter: tc.filter})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range got[0] {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("filter %v: %v, want %v", tc.filter, ids, tc.want)
		}
	}
	got, _ := c.Search(context.Background(), [][]float32{{1, 0}}, 1, SearchOptions{Filter: map[string]string{"lang": "en"}})
	if r := got[0][0]; string(r.Metadata) != `{"lang":"en","n":5,"ok":true,"tag":null}` || !r.MetadataJSON {
		t.Fatalf("result metadata %s %v (stored compacted)", r.Metadata, r.MetadataJSON)
	}
}

func TestSearchValidation(t *testing.T) {
	c := testCollection(t, 3, Cosine)
	mustUpsert(t, c, rec("a", []float32{1, 0, 0}))
	ctx := context.Background()
	q := [][]float32{{1, 0, 0}}
	cases := []struct {
		name    string
		queries [][]float32
		k       int
		filter  map[string]string
		want    string
	}{
		{"k zero", q, 0, nil, "k 0 is not in [1, 10000]"},
		{"k too big", q, 10001, nil, "k 10001 is not in [1, 10000]"},
		{"no queries", nil, 1, nil, "no queries"},
		{"dimension", [][]float32{{1, 0}}, 1, nil, "query 0: vector has 2 dimensions, want 3"},
		{"nan", [][]float32{{1, 0, 0}, {float32(math.NaN()), 0, 0}}, 1, nil, "query 1: vector component 0 is NaN"},
		{"zero cosine", [][]float32{{0, 0, 0}}, 1, nil, "zero vector under the cosine metric"},
		{"empty filter key", q, 1, map[string]string{"": "x"}, "empty field name"},
	}
	for _, tc := range cases {
		_, err := c.Search(ctx, tc.queries, tc.k, SearchOptions{Filter: tc.filter})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid with %q", tc.name, err, tc.want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Search(cctx, q, 1, SearchOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled search: %v", err)
	}
}

func TestSearchEmptyCollection(t *testing.T) {
	c := testCollection(t, 3, L2)
	got, err := c.Search(context.Background(), [][]float32{{1, 2, 3}}, 5, SearchOptions{})
	if err != nil || len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("Search on empty = %v, %v", got, err)
	}
}

func TestSearchL2IsDistanceAscending(t *testing.T) {
	c := testCollection(t, 2, L2)
	mustUpsert(t, c, rec("far", []float32{3, 0}), rec("near", []float32{1, 0}), rec("here", []float32{0, 0}), rec("tie", []float32{-1, 0}))
	got, err := c.Search(context.Background(), [][]float32{{0, 0}}, 3, SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	var scores []float32
	for _, r := range got[0] {
		order = append(order, r.ID)
		scores = append(scores, r.Score)
	}
	if !slices.Equal(order, []string{"here", "near", "tie"}) || !slices.Equal(scores, []float32{0, 1, 1}) {
		t.Fatalf("order %v scores %v", order, scores)
	}
}

func TestSearchVectorsFromTheSameSnapshot(t *testing.T) {
	c := testCollection(t, 2, Cosine)
	mustUpsert(t, c, rec("a", []float32{3, 4}), rec("b", []float32{0, 1}))
	q := [][]float32{{1, 0}}
	got, err := c.Search(context.Background(), q, 2, SearchOptions{})
	if err != nil || got[0][0].Vector != nil {
		t.Fatalf("without Vectors: %v, %v", got, err)
	}
	got, err = c.Search(context.Background(), q, 2, SearchOptions{Vectors: true})
	if err != nil {
		t.Fatal(err)
	}
	a := got[0][0]
	if a.ID != "a" || !slices.Equal(a.Vector, []float32{0.6, 0.8}) || !slices.Equal(got[0][1].Vector, []float32{0, 1}) {
		t.Fatalf("with Vectors: %+v", got[0])
	}
	// A copy: changing it changes nothing stored.
	a.Vector[0] = 9
	if r, _, _ := c.Get("a"); r.Vector[0] != 0.6 {
		t.Fatalf("result vector aliases the stored row: %v", r.Vector)
	}
	// From the snapshot that scored the hits: a snapshot taken before an
	// upsert still answers with the old vector.
	s, err := c.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustUpsert(t, c, rec("a", []float32{1, 0}))
	res, err := s.search(context.Background(), CPUBackend{}, c.id, []float32{1, 0}, 1, 1, SearchOptions{Vectors: true})
	if err != nil || res[0][0].ID != "a" || !slices.Equal(res[0][0].Vector, []float32{0.6, 0.8}) {
		t.Fatalf("old snapshot: %+v, %v", res, err)
	}
}

func TestFilterIndexFollowsAppendsAndSnapshots(t *testing.T) {
	c := testCollection(t, 2, Dot)
	meta := func(id, lang string) Record {
		return Record{ID: id, Vector: []float32{1, 0}, Metadata: fmt.Appendf(nil, `{"lang":%q}`, lang), MetadataJSON: true}
	}
	search := func(s *Snapshot) []string {
		t.Helper()
		res, err := s.search(context.Background(), CPUBackend{}, c.id, []float32{1, 0}, 1, 10, SearchOptions{Filter: map[string]string{"lang": "en"}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range res[0] {
			ids = append(ids, r.ID)
		}
		return ids
	}
	mustUpsert(t, c, meta("a", "en"), meta("b", "fr"))
	old, err := c.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	mustUpsert(t, c, meta("c", "en"), meta("b", "en"))
	if _, err := c.Delete(context.Background(), []string{"a"}); err != nil {
		t.Fatal(err)
	}
	cur, err := c.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if got := search(cur); !slices.Equal(got, []string{"c", "b"}) {
		t.Fatalf("current snapshot: %v, want [c b]", got)
	}
	f := cur.st.gen.fields.field("lang")
	if f.rows != 4 {
		t.Fatalf("field index covers %d rows, want 4", f.rows)
	}
	// The index now covers rows the older snapshot does not have: it
	// must answer from its own rows only (b was "fr" then, a live).
	if got := search(old); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("older snapshot: %v, want [a]", got)
	}
	mustUpsert(t, c, meta("d", "en"))
	got, err := c.Search(context.Background(), [][]float32{{1, 0}}, 10, SearchOptions{Filter: map[string]string{"lang": "en"}})
	if err != nil || len(got[0]) != 3 || f.rows != 5 {
		t.Fatalf("after another upsert: %v, %v (index covers %d rows)", got, err, f.rows)
	}
}

// TestCosineRefusesVectorsWithoutDirection: a vector whose norm is zero,
// subnormal or not finite was stored as [+Inf NaN NaN NaN] (issue 11.2);
// as a record or a query it is refused with the reason.
func TestCosineRefusesVectorsWithoutDirection(t *testing.T) {
	c := testCollection(t, 4, Cosine)
	mustUpsert(t, c, rec("ok", []float32{1, 0, 0, 0}))
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		name string
		v    []float32
		want string
	}{
		{"zero", []float32{0, 0, 0, 0}, "zero vector"},
		{"subnormal", []float32{1e-45, 0, 0, 0}, "subnormal"},
		{"subnormal sum", []float32{1e-39, 1e-39, 0, 0}, "subnormal"},
		{"infinite", []float32{inf, 0, 0, 0}, "component 0 is +Inf"},
		{"nan", []float32{0, float32(math.NaN()), 0, 0}, "component 1 is NaN"},
	} {
		err := c.Upsert(context.Background(), []Record{rec("bad", tc.v)})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("upsert %s: %v, want ErrInvalid with %q", tc.name, err, tc.want)
		}
		_, err = c.Search(context.Background(), [][]float32{tc.v}, 1, SearchOptions{})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("query %s: %v, want ErrInvalid with %q", tc.name, err, tc.want)
		}
	}
	if _, ok, _ := c.Get("bad"); ok {
		t.Fatal("a refused vector was stored")
	}
	// The smallest normal norm still has a direction.
	mustUpsert(t, c, rec("tiny", []float32{0x1p-126, 0, 0, 0}))
	got, err := c.Search(context.Background(), [][]float32{{0x1p-126, 0, 0, 0}}, 2, SearchOptions{Vectors: true})
	if err != nil || len(got[0]) != 2 || got[0][0].Score != 1 || got[0][1].Score != 1 {
		t.Fatalf("smallest normal vector: %+v, %v", got, err)
	}
}
