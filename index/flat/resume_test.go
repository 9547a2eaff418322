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

// cloneState is a deep copy of st (Checkpoint's state is only valid
// during the call).
func cloneState(st *JoinState) *JoinState {
	c := &JoinState{Done: slices.Clone(st.Done), Hits: make([][]Hit, len(st.Hits))}
	for i, hs := range st.Hits {
		c.Hits[i] = slices.Clone(hs)
	}
	return c
}

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
			var states []*JoinState
			stops := 0
			for round := 0; ; round++ {
				if round > 3*nblocks {
					t.Fatal("the join does not progress across resumes")
				}
				ctx, cancel := context.WithCancel(context.Background())
				o := base
				if len(states) > 0 {
					o.Resume = states[len(states)-1]
					if round%3 == 0 && len(states) > 1 {
						o.Resume = states[len(states)-2]
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
					states = append(states, cloneState(st))
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
				if st := states[len(states)-1]; !slices.Equal(st.Done, slices.Repeat([]bool{true}, nblocks)) {
					t.Fatalf("the final checkpoint's done blocks: %v", st.Done)
				}
				if stopAfter < nblocks/2 && stops < 2 {
					t.Fatalf("stopped only %d times", stops)
				}
				return
			}
		})
	}
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
			if err := MergeHits(merged, share, o.K); err != nil {
				t.Fatal(err)
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
	good := &JoinState{Done: make([]bool, 5), Hits: make([][]Hit, 40)}
	for _, tc := range []struct {
		name string
		edit func(*JoinState)
		want string
	}{
		{"blocks", func(s *JoinState) { s.Done = s.Done[:4] }, "4 blocks"},
		{"self", func(s *JoinState) { s.Hits[3] = []Hit{{Row: 3}} }, "partner 3"},
		{"range", func(s *JoinState) { s.Hits[3] = []Hit{{Row: 40}} }, "partner 40"},
		{"twice", func(s *JoinState) { s.Hits[3] = []Hit{{Row: 1}, {Row: 1}} }, "twice"},
		{"k", func(s *JoinState) { s.Hits[3] = []Hit{{Row: 1}, {Row: 2}, {Row: 4}} }, "3 hits"},
	} {
		st := cloneState(good)
		tc.edit(st)
		o.Resume = st
		if _, err := SelfJoin(context.Background(), m, o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one naming %q", tc.name, err, tc.want)
		}
	}
	o.Resume = nil
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
