package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// vectorFor is the vector stored under id: exact float32 values that a
// torn or lost row would not reproduce.
func vectorFor(id string) []float32 {
	v := make([]float32, 8)
	for i := range v {
		h := uint32(2166136261)
		for _, c := range []byte(id) {
			h = (h ^ uint32(c)) * 16777619
		}
		v[i] = float32(h%100000)/1000 + float32(i)
	}
	return v
}

// TestServerCrashKeepsAcknowledgedWrites kills "embedd serve" with SIGKILL
// at random moments while four clients stream upserts, restarts it, and
// checks that every acknowledged record is there with its exact vector.
func TestServerCrashKeepsAcknowledgedWrites(t *testing.T) {
	needFixtures(t)
	bin := buildEmbedd(t)
	data := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	acked := map[string]bool{}
	var mu sync.Mutex // guards acked
	const rounds = 8
	for round := range rounds {
		sp := startServe(t, bin, data)
		ix := embeddv1.NewIndexServiceClient(sp.conn)
		ctx := context.Background()
		if round == 0 {
			if _, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "crash", Dimension: 8, Metric: embeddv1.Metric_METRIC_DOT}); err != nil {
				t.Fatal(err)
			}
		} else {
			// Everything acknowledged before the kills is there, exactly.
			mu.Lock()
			ids := make([]string, 0, len(acked))
			for id := range acked {
				ids = append(ids, id)
			}
			mu.Unlock()
			slices.Sort(ids)
			for lo := 0; lo < len(ids); lo += 500 {
				chunk := ids[lo:min(lo+500, len(ids))]
				gr, err := ix.Get(ctx, &embeddv1.GetRequest{Collection: "crash", Ids: chunk})
				if err != nil {
					t.Fatalf("round %d: Get: %v", round, err)
				}
				if len(gr.Missing) > 0 {
					t.Fatalf("round %d: %d acknowledged ids lost, e.g. %s", round, len(gr.Missing), gr.Missing[0])
				}
				for _, r := range gr.Records {
					if !slices.Equal(r.Vector, vectorFor(r.Id)) {
						t.Fatalf("round %d: id %s has vector %v, want %v", round, r.Id, r.Vector, vectorFor(r.Id))
					}
				}
			}
			t.Logf("round %d: all %d acknowledged ids intact after SIGKILL", round, len(ids))
		}
		if round == rounds-1 {
			break
		}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for n := 0; ; n++ {
					recs := make([]*embeddv1.Record, 8)
					for j := range recs {
						id := fmt.Sprintf("r%d-w%d-%d-%d", round, w, n, j)
						recs[j] = &embeddv1.Record{Id: id, Vector: vectorFor(id)}
					}
					if _, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "crash", Records: recs}); err != nil {
						return // the server died
					}
					mu.Lock()
					for _, r := range recs {
						acked[r.Id] = true
					}
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		sp.cmd.Process.Signal(syscall.SIGKILL)
		wg.Wait()
		sp.cmd.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 100 {
		t.Fatalf("only %d writes acknowledged across %d rounds: the test did not exercise the server", len(acked), rounds)
	}
}
