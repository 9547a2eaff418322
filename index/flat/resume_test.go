package flat

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// held is a JoinState's rows in memory (Checkpoint's state is only valid
// during the call).
type held struct {
	done []bool
	hits [][]Hit
}

func hold(st *JoinState, rows int) held {
	h := held{done: slices.Clone(st.Done), hits: make([][]Hit, rows)}
	if err := st.Rows(func(r int, hs []Hit) error { h.hits[r] = slices.Clone(hs); return nil }); err != nil {
		panic(err)
	}
	return h
}

func (h held) state() *JoinState { return StateOf(h.done, h.hits) }

// TestSelfJoinResumesFromCheckpoint stops a self-join after a number of
// blocks (cancelling it mid-work), resumes it from its last checkpoint or,
// as after a kill that lost the final one, the one before, over and over,
// and gets exactly the uninterrupted join's hits.
func TestSelfJoinResumesFromCheckpoint(t *testing.T) {
	m := unitMatrix(11, 2000, 32)
	base := JoinOptions{Metric: Cosine, K: 7, BlockRows: 20, Workers: 3}
	want, err := SelfJoin(context.Background(), m, base)
	if err != nil {
		t.Fatal(err)
	}
	nblocks := base.Blocks(2000, 32)
	for _, stopAfter := range []int{1, 7, 30} {
		t.Run(fmt.Sprintf("stop-after-%d", stopAfter), func(t *testing.T) {
			var states []held
			stops := 0
			for round := 0; ; round++ {
				if round > 3*nblocks {
					t.Fatal("the join does not progress across resumes")
				}
				ctx, cancel := context.WithCancel(context.Background())
				o := base
				if len(states) > 0 {
					o.Resume = states[len(states)-1].state()
					if round%3 == 0 && len(states) > 1 {
						o.Resume = states[len(states)-2].state()
					}
				}
				var scored atomic.Int64
				o.CheckpointEvery = time.Nanosecond
				o.Done = func(int) {
					if scored.Add(1) == int64(stopAfter) {
						cancel()
					}
				}
				o.Checkpoint = func(st *JoinState) error {
					states = append(states, hold(st, 2000))
					return nil
				}
				got, err := SelfJoin(ctx, m, o)
				cancel()
				if errors.Is(err, context.Canceled) {
					stops++
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("after %d stops the hits differ from an uninterrupted join's", stops)
				}
				if st := states[len(states)-1]; !slices.Equal(st.done, slices.Repeat([]bool{true}, nblocks)) || !reflect.DeepEqual(sortAll(st.hits), want) {
					t.Fatalf("the final checkpoint (done blocks %v) is not the join's answer", st.done)
				}
				if stopAfter < nblocks/2 && stops < 2 {
					t.Fatalf("stopped only %d times", stops)
				}
				return
			}
		})
	}
}

// sortAll sorts each row's hits best first (a state's are in no order).
func sortAll(hits [][]Hit) [][]Hit {
	out := make([][]Hit, len(hits))
	for r, hs := range hits {
		out[r] = MergeHits(nil, hs, len(hs))
	}
	return out
}

// TestSelfJoinShardsMerge splits a self-join's blocks among shards with
// SkipBlock; MergeHits of the shares is the whole join's answer.
func TestSelfJoinShardsMerge(t *testing.T) {
	m := unitMatrix(12, 500, 16)
	o := JoinOptions{Metric: Dot, K: 5, BlockRows: 16, Workers: 2}
	want, err := SelfJoin(context.Background(), m, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3, 7} {
		merged := make([][]Hit, 500)
		for s := range n {
			so := o
			so.SkipBlock = func(b int) bool { return b%n != s }
			share, err := SelfJoin(context.Background(), m, so)
			if err != nil {
				t.Fatal(err)
			}
			for r := range merged {
				merged[r] = MergeHits(merged[r], share[r], o.K)
			}
		}
		if !reflect.DeepEqual(merged, want) {
			t.Fatalf("%d shards merged differ from one join", n)
		}
	}
}

// TestResumeRefusesAnotherJoin: a state that does not fit the join is
// refused with what is wrong, before any work.
func TestResumeRefusesAnotherJoin(t *testing.T) {
	m := unitMatrix(13, 40, 8)
	o := JoinOptions{Metric: Dot, K: 2, BlockRows: 8}
	for _, tc := range []struct {
		name string
		edit func(*held)
		want string
	}{
		{"blocks", func(s *held) { s.done = s.done[:4] }, "4 blocks"},
		{"rows", func(s *held) { s.hits = append(s.hits, nil) }, "row 40"},
		{"self", func(s *held) { s.hits[3] = []Hit{{Row: 3}} }, "partner 3"},
		{"range", func(s *held) { s.hits[3] = []Hit{{Row: 40}} }, "partner 40"},
		{"twice", func(s *held) { s.hits[3] = []Hit{{Row: 1}, {Row: 1}} }, "twice"},
		{"k", func(s *held) { s.hits[3] = []Hit{{Row: 1}, {Row: 2}, {Row: 4}} }, "3 hits"},
	} {
		st := held{done: make([]bool, 5), hits: make([][]Hit, 40)}
		tc.edit(&st)
		o.Resume = st.state()
		if _, err := SelfJoin(context.Background(), m, o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one naming %q", tc.name, err, tc.want)
		}
	}
	o.Resume, o.NoHits = nil, true
	if _, err := SelfJoin(context.Background(), m, o); err == nil || !strings.Contains(err.Error(), "NoHits needs a Checkpoint") {
		t.Errorf("NoHits without a Checkpoint: %v", err)
	}
	var final held
	o.Checkpoint = func(st *JoinState) error { final = hold(st, 40); return nil }
	want, err := SelfJoin(context.Background(), m, JoinOptions{Metric: Dot, K: 2, BlockRows: 8})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := SelfJoin(context.Background(), m, o); err != nil || got != nil || !reflect.DeepEqual(sortAll(final.hits), want) {
		t.Errorf("NoHits: hits %v, err %v; the final checkpoint should hold the answer", got, err)
	}
	o.NoHits = false
	o.K, o.Pairs, o.Checkpoint = 0, func(int, []Pair, bool) error { return nil }, func(*JoinState) error { return nil }
	if _, err := SelfJoin(context.Background(), m, o); err == nil {
		t.Error("Checkpoint without K's heaps was accepted")
	}
}

// TestCheckpointErrorStopsTheJoin: a failing checkpoint (a full disk)
// stops the join with its error.
func TestCheckpointErrorStopsTheJoin(t *testing.T) {
	full := errors.New("no space left on device")
	_, err := SelfJoin(context.Background(), unitMatrix(14, 300, 8), JoinOptions{Metric: Dot, K: 3, BlockRows: 8,
		Checkpoint: func(*JoinState) error { return full }})
	if !errors.Is(err, full) {
		t.Fatalf("err %v, want the checkpoint's", err)
	}
}
