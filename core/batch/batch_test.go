package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const dim = 4

// fake is a Forwarder whose vector is a function of the sequence alone, so
// any mix-up between batch rows shows; it records every batch it ran.
type fake struct {
	mu      sync.Mutex // guards batches and seen
	batches [][]int    // lengths of the rows of each batch
	seen    map[int32]bool
	gate    chan struct{} // when set, each Forward waits for a value
	entered chan struct{} // when set, Forward signals entry
	err     error
}

func vectorOf(seq []int32) []float32 {
	var sum int64
	for _, id := range seq {
		sum += int64(id)
	}
	return []float32{float32(len(seq)), float32(seq[0]), float32(seq[len(seq)-1]), float32(sum)}
}

func (f *fake) Forward(seqs [][]int32, dst [][]float32) error {
	f.mu.Lock()
	lens := make([]int, len(seqs))
	for i, s := range seqs {
		lens[i] = len(s)
		if f.seen != nil {
			f.seen[s[0]] = true
		}
	}
	f.batches = append(f.batches, lens)
	f.mu.Unlock()
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		<-f.gate
	}
	if f.err != nil {
		return f.err
	}
	for i, s := range seqs {
		copy(dst[i], vectorOf(s))
	}
	return nil
}

func randSeq(r *rand.Rand, maxLen int) []int32 {
	s := make([]int32, 1+r.IntN(maxLen))
	for i := range s {
		s[i] = int32(r.IntN(30000))
	}
	return s
}

func checkVectors(t *testing.T, seqs [][]int32, got [][]float32) {
	t.Helper()
	if len(got) != len(seqs) {
		t.Fatalf("%d vectors for %d texts", len(got), len(seqs))
	}
	for i, s := range seqs {
		if !slices.Equal(got[i], vectorOf(s)) {
			t.Fatalf("text %d: vector %v, want %v (rows mixed up)", i, got[i], vectorOf(s))
		}
	}
}

func TestConcurrentRequestsGetTheirOwnVectors(t *testing.T) {
	f := &fake{}
	cfg := full(Config{Dim: dim, MaxBatchTokens: 1024, MaxBatchSize: 32, MaxWait: time.Millisecond, Workers: 2})
	b, err := New(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 20 {
				seqs := make([][]int32, 1+r.IntN(8))
				for i := range seqs {
					seqs[i] = randSeq(r, 200)
				}
				got, err := b.Submit(context.Background(), seqs)
				if err != nil {
					errs <- err
					return
				}
				for i, s := range seqs {
					if !slices.Equal(got[i], vectorOf(s)) {
						errs <- fmt.Errorf("goroutine %d text %d: got %v want %v", g, i, got[i], vectorOf(s))
						return
					}
				}
			}
		})
	}
	wg.Wait()
	b.Close()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	multi := 0
	for _, lens := range f.batches {
		longest, shortest := slices.Max(lens), slices.Min(lens)
		if len(lens) > cfg.MaxBatchSize || (len(lens) > 1 && len(lens)*longest > cfg.MaxBatchTokens) {
			t.Errorf("batch of %d rows, longest %d, breaks the limits", len(lens), longest)
		}
		if 2*shortest < longest {
			t.Errorf("batch pads a %d-token row to %d (length buckets should prevent it)", shortest, longest)
		}
		if len(lens) > 1 {
			multi++
		}
	}
	if multi == 0 {
		t.Errorf("no batch held more than one text across %d batches: nothing was merged", len(f.batches))
	}
}

func TestBigRequestIsSplitAndReassembled(t *testing.T) {
	f := &fake{}
	b, _ := New(f, full(Config{Dim: dim, MaxBatchTokens: 256, MaxBatchSize: 16}))
	defer b.Close()
	r := rand.New(rand.NewPCG(7, 7))
	seqs := make([][]int32, 1000)
	for i := range seqs {
		seqs[i] = randSeq(r, 64)
	}
	got, err := b.Submit(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, seqs, got)
	if len(f.batches) < 1000/16 {
		t.Errorf("1000 texts ran in %d batches; the size cap of 16 needs at least %d", len(f.batches), 1000/16)
	}
}

func TestFullQueueRefusesAtOnceOthersProceed(t *testing.T) {
	f := &fake{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	b, _ := New(f, full(Config{Dim: dim, QueueSize: 10, MaxBatchSize: 100, MaxBatchTokens: 100000}))
	defer b.Close()
	seq := func(v int32) [][]int32 { return [][]int32{{v, v}} }
	// Occupy the only worker.
	first := make(chan error, 1)
	go func() { _, err := b.Submit(context.Background(), seq(1)); first <- err }()
	<-f.entered
	// Fill the queue: 10 texts wait.
	queued := make(chan error, 1)
	var fill [][]int32
	for i := range 10 {
		fill = append(fill, []int32{int32(100 + i)})
	}
	go func() { got, err := b.Submit(context.Background(), fill); queued <- err; _ = got }()
	for b.QueueDepth() < 10 {
		time.Sleep(time.Millisecond)
	}
	_, err := b.Submit(context.Background(), seq(2))
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Submit on a full queue: got %v, want ErrQueueFull", err)
	}
	close(f.gate) // let everything run
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
	if got, err := b.Submit(context.Background(), seq(3)); err != nil || got[0][1] != 3 {
		t.Fatalf("after the queue drained: %v, %v", got, err)
	}
}

func TestCancelledItemsAreDroppedBeforeInference(t *testing.T) {
	f := &fake{gate: make(chan struct{}), entered: make(chan struct{}, 100), seen: map[int32]bool{}}
	b, _ := New(f, full(Config{Dim: dim}))
	blocker := make(chan error, 1)
	go func() { _, err := b.Submit(context.Background(), [][]int32{{1}}); blocker <- err }()
	<-f.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() { _, err := b.Submit(ctx, [][]int32{{42}, {43}}); cancelled <- err }()
	for b.QueueDepth() < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: got %v", err)
	}
	deadline, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := b.Submit(deadline, [][]int32{{44}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired request: got %v, want DeadlineExceeded", err)
	}
	close(f.gate)
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	if got, err := b.Submit(context.Background(), [][]int32{{7}}); err != nil || got[0][1] != 7 {
		t.Fatalf("after cancellations: %v %v", got, err)
	}
	b.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range []int32{42, 43, 44} {
		if f.seen[id] {
			t.Errorf("text %d of an ended request reached the model", id)
		}
	}
	if n := b.Dropped(); n != 3 {
		t.Errorf("Dropped() = %d, want 3", n)
	}
}

func TestForwardErrorReachesEveryRequestOfTheBatch(t *testing.T) {
	boom := errors.New("boom")
	b, _ := New(&fake{err: boom}, full(Config{Dim: dim}))
	defer b.Close()
	if _, err := b.Submit(context.Background(), [][]int32{{1}, {2}}); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the Forwarder's error", err)
	}
}

func TestCloseDrainsQueuedWork(t *testing.T) {
	f := &fake{gate: make(chan struct{}), entered: make(chan struct{}, 1000)}
	b, _ := New(f, full(Config{Dim: dim, MaxBatchSize: 4}))
	results := make(chan error, 20)
	for i := range 20 {
		go func() {
			got, err := b.Submit(context.Background(), [][]int32{{int32(i + 1)}})
			if err == nil && got[0][1] != float32(i+1) {
				err = fmt.Errorf("wrong vector %v", got[0])
			}
			results <- err
		}()
	}
	<-f.entered
	for {
		f.mu.Lock()
		running := len(f.batches[0])
		f.mu.Unlock()
		if b.QueueDepth()+running == 20 {
			break // every request is queued or running
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	for {
		b.mu.Lock()
		c := b.closed
		b.mu.Unlock()
		if c {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := b.Submit(context.Background(), [][]int32{{99}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit during Close: got %v, want ErrClosed", err)
	}
	close(f.gate)
	<-closed
	for range 20 {
		if err := <-results; err != nil {
			t.Errorf("queued request lost at Close: %v", err)
		}
	}
	b.Close() // idempotent
}

func TestNewValidates(t *testing.T) {
	if _, err := New(&fake{}, full(Config{})); err == nil || !strings.Contains(err.Error(), "Dim 0") {
		t.Fatalf("Dim 0: got %v, want an error naming Dim", err)
	}
	if _, err := New(&fake{}, Config{Dim: 4, MaxBatchTokens: 1, MaxBatchSize: 1, QueueSize: 1}); err == nil || !strings.Contains(err.Error(), "Workers 0") {
		t.Fatalf("Workers 0: got %v, want an error naming Workers", err)
	}
}

func TestSubmitTimedReportsTheBatchesThatRanTheTexts(t *testing.T) {
	f := &fake{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	b, _ := New(f, full(Config{Dim: dim, MaxBatchSize: 100, MaxBatchTokens: 100000}))
	defer b.Close()
	// Occupy the only worker, so that the next two requests share a batch.
	type result struct {
		tm  Timing
		err error
	}
	submit := func(seqs [][]int32) chan result {
		c := make(chan result, 1)
		go func() {
			got, tm, err := b.SubmitTimed(context.Background(), seqs)
			if err == nil {
				checkVectors(t, seqs, got)
			}
			c <- result{tm, err}
		}()
		return c
	}
	first := submit([][]int32{{1, 1, 1}})
	<-f.entered
	two := submit([][]int32{{2, 2}, {3, 3}}) // one length: one bucket
	for b.QueueDepth() < 2 {
		time.Sleep(time.Millisecond)
	}
	one := submit([][]int32{{4, 4}})
	for b.QueueDepth() < 3 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(2 * time.Millisecond) // a measurable queue wait
	close(f.gate)
	r1, r2, r3 := <-first, <-two, <-one
	for _, r := range []result{r1, r2, r3} {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.tm.Submitted.IsZero() || len(r.tm.Batches) != 1 {
			t.Fatalf("timing %+v: want Submitted and one batch", r.tm)
		}
		bt := r.tm.Batches[0]
		if bt.Start.Before(r.tm.Submitted) || bt.End.Before(bt.Start) || bt.Err != nil {
			t.Errorf("implausible batch timing: submitted %v, %+v", r.tm.Submitted, bt)
		}
	}
	b1, b2, b3 := r1.tm.Batches[0], r2.tm.Batches[0], r3.tm.Batches[0]
	if b1.ID == b2.ID || b2.ID != b3.ID {
		t.Errorf("batch ids %d, %d, %d: want the last two requests in one batch, the first in another", b1.ID, b2.ID, b3.ID)
	}
	if b1.Rows != 1 || b1.Texts != 1 || b1.Tokens != 3 || b1.PaddedTokens != 3 {
		t.Errorf("first request's batch: %+v", b1)
	}
	if b2.Rows != 3 || b2.Texts != 2 || b3.Texts != 1 || b2.Tokens != 6 || b2.PaddedTokens != 6 {
		t.Errorf("shared batch: %+v and %+v, want 3 rows (2 + 1 texts), 6 tokens, 6 padded", b2, b3)
	}
	if !b2.Start.Equal(b3.Start) || !b2.End.Equal(b3.End) {
		t.Errorf("requests of one batch see different times: %+v, %+v", b2, b3)
	}
	if b2.Start.Before(b1.End) {
		t.Errorf("with one worker, the second batch started (%v) before the first ended (%v)", b2.Start, b1.End)
	}
	if wait := b2.Start.Sub(r2.tm.Submitted); wait < 2*time.Millisecond {
		t.Errorf("queue wait %v, want at least the 2ms the worker was held", wait)
	}
}

func TestSubmitTimedSplitRequest(t *testing.T) {
	b, _ := New(&fake{}, full(Config{Dim: dim, MaxBatchSize: 4}))
	defer b.Close()
	seqs := make([][]int32, 10)
	for i := range seqs {
		seqs[i] = []int32{int32(i + 1), 5}
	}
	got, tm, err := b.SubmitTimed(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, seqs, got)
	texts, ids := 0, map[uint64]bool{}
	for _, bt := range tm.Batches {
		texts += bt.Texts
		ids[bt.ID] = true
		if bt.Rows > 4 || bt.Texts > bt.Rows || bt.Start.Before(tm.Submitted) || bt.End.Before(bt.Start) {
			t.Errorf("batch %+v (submitted %v)", bt, tm.Submitted)
		}
	}
	if texts != 10 || len(tm.Batches) < 3 || len(ids) != len(tm.Batches) {
		t.Errorf("10 texts in batches of at most 4 reported as %+v", tm.Batches)
	}
}

func TestSubmitTimedReportsForwardErrors(t *testing.T) {
	boom := errors.New("boom")
	b, _ := New(&fake{err: boom}, full(Config{Dim: dim}))
	defer b.Close()
	_, tm, err := b.SubmitTimed(context.Background(), [][]int32{{1}, {2}})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the Forwarder's error", err)
	}
	if len(tm.Batches) != 1 || !errors.Is(tm.Batches[0].Err, boom) || tm.Batches[0].Texts != 2 {
		t.Errorf("timing of a failed batch: %+v", tm.Batches)
	}
	b.Close()
	if _, tm, err := b.SubmitTimed(context.Background(), [][]int32{{1}}); !errors.Is(err, ErrClosed) || len(tm.Batches) != 0 {
		t.Errorf("after Close: %+v, %v", tm, err)
	}
}

// nop is a Forwarder that does nothing, to measure the batcher alone.
type nop struct{}

func (nop) Forward([][]int32, [][]float32) error { return nil }

// BenchmarkSubmit measures the batcher's own cost per one-text request,
// with and without timing.
func BenchmarkSubmit(b *testing.B) {
	for _, timed := range []bool{false, true} {
		b.Run(fmt.Sprintf("timed=%v", timed), func(b *testing.B) {
			bt, _ := New(nop{}, full(Config{Dim: dim, MaxWait: 50 * time.Microsecond}))
			defer bt.Close()
			seqs := [][]int32{{1, 2, 3}}
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					var err error
					if timed {
						_, _, err = bt.SubmitTimed(context.Background(), seqs)
					} else {
						_, err = bt.Submit(context.Background(), seqs)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// full fills c's zero fields with the sizes most tests want: a 8192-token,
// 64-row batch, 2ms wait, 4096 queued texts, one worker.
func full(c Config) Config {
	c.MaxBatchTokens = cmp.Or(c.MaxBatchTokens, 8192)
	c.MaxBatchSize = cmp.Or(c.MaxBatchSize, 64)
	c.MaxWait = cmp.Or(c.MaxWait, 2*time.Millisecond)
	c.QueueSize = cmp.Or(c.QueueSize, 4096)
	c.Workers = cmp.Or(c.Workers, 1)
	return c
}

// TestBulkLaneRunsBehindInteractiveTexts holds the only worker on a bulk
// batch, queues more bulk texts and then interactive ones, and checks
// that every interactive text runs before the remaining bulk ones, that no
// batch mixes the lanes, that bulk batches keep to BulkMaxBatchSize, and
// that a full bulk lane refuses bulk texts but not interactive ones.
func TestBulkLaneRunsBehindInteractiveTexts(t *testing.T) {
	f := &fake{gate: make(chan struct{}, 1000), entered: make(chan struct{}, 1000)}
	b, _ := New(f, full(Config{Dim: dim, QueueSize: 20, BulkMaxBatchSize: 3}))
	defer b.Close()
	bulk := WithBulk(context.Background())
	if !IsBulk(bulk) || IsBulk(context.Background()) {
		t.Fatal("IsBulk does not see WithBulk")
	}
	// Bulk texts are length 1, interactive ones length 2, so each batch's
	// lane shows in the fake's record.
	var bulkSeqs [][]int32
	for i := range 20 {
		bulkSeqs = append(bulkSeqs, []int32{int32(1000 + i)})
	}
	bulkDone := make(chan error, 1)
	go func() {
		got, err := b.Submit(bulk, bulkSeqs)
		if err == nil {
			checkVectors(t, bulkSeqs, got)
		}
		bulkDone <- err
	}()
	<-f.entered // the first bulk batch runs; 17 bulk texts wait
	for b.BulkQueueDepth() < 17 {
		time.Sleep(time.Millisecond)
	}
	if _, err := b.Submit(bulk, [][]int32{{1}, {2}, {3}, {4}}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("bulk Submit over the bulk lane's bound: got %v, want ErrQueueFull", err)
	}
	var inter [][]int32
	for i := range 10 {
		inter = append(inter, []int32{int32(i + 1), 0})
	}
	interDone := make(chan error, 1)
	go func() {
		got, err := b.Submit(context.Background(), inter)
		if err == nil {
			checkVectors(t, inter, got)
		}
		interDone <- err
	}()
	for b.QueueDepth() < 10 {
		time.Sleep(time.Millisecond)
	}
	for range 1000 {
		f.gate <- struct{}{}
		select {
		case <-f.entered:
		case err := <-bulkDone:
			if err != nil {
				t.Fatal(err)
			}
			if err := <-interDone; err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			checkLanes(t, f.batches, 3)
			return
		}
	}
	t.Fatal("the batches did not finish")
}

// checkLanes checks the batches of TestBulkLaneRunsBehindInteractiveTexts:
// the first is bulk (length-1 rows), then all the interactive ones
// (length-2 rows), then bulk; none mixed; bulk ones at most bulkMax rows.
func checkLanes(t *testing.T, batches [][]int, bulkMax int) {
	t.Helper()
	lane := func(lens []int) int {
		for _, l := range lens[1:] {
			if l != lens[0] {
				t.Fatalf("a batch mixes the lanes: row lengths %v", lens)
			}
		}
		return lens[0]
	}
	var order []int
	for _, lens := range batches {
		l := lane(lens)
		if l == 1 && len(lens) > bulkMax {
			t.Errorf("a bulk batch of %d rows, over BulkMaxBatchSize %d", len(lens), bulkMax)
		}
		if len(order) == 0 || order[len(order)-1] != l {
			order = append(order, l)
		}
	}
	if !slices.Equal(order, []int{1, 2, 1}) {
		t.Errorf("lanes ran in the order %v (1 bulk, 2 interactive), want [1 2 1]: batches %v", order, batches)
	}
}
