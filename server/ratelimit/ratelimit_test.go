package ratelimit

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a hand-stepped time source.
type clock struct{ t time.Time }

func newClock() *clock                   { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type want struct {
	ok    bool
	retry time.Duration
}

func check(t *testing.T, l *Limiter, key string, cost int, w want) {
	t.Helper()
	ok, retry := l.Allow(key, cost)
	if ok != w.ok || retry != w.retry {
		t.Fatalf("Allow(%q, %d) = %v, %v; want %v, %v", key, cost, ok, retry, w.ok, w.retry)
	}
}

func TestBurstThenRate(t *testing.T) {
	c := newClock()
	l := New(10, 5, WithClock(c.now)) // a token every 100ms, 5 at once
	for range 5 {
		check(t, l, "a", 1, want{true, 0})
	}
	check(t, l, "a", 1, want{false, 100 * time.Millisecond})
	c.advance(99 * time.Millisecond)
	check(t, l, "a", 1, want{false, time.Millisecond})
	c.advance(time.Millisecond) // exactly as told
	check(t, l, "a", 1, want{true, 0})
	check(t, l, "a", 1, want{false, 100 * time.Millisecond})
	// Another key has its own bucket.
	check(t, l, "b", 5, want{true, 0})
	check(t, l, "b", 1, want{false, 100 * time.Millisecond})
}

func TestCost(t *testing.T) {
	c := newClock()
	l := New(10, 5, WithClock(c.now))
	check(t, l, "a", 3, want{true, 0})
	// Two tokens left: a cost of 3 waits for one more, and takes nothing.
	check(t, l, "a", 3, want{false, 100 * time.Millisecond})
	check(t, l, "a", 2, want{true, 0})
	// Over the burst: no wait helps.
	check(t, l, "a", 6, want{false, Never})
	// A cost below one counts as one.
	c.advance(100 * time.Millisecond)
	check(t, l, "a", 0, want{true, 0})
	check(t, l, "a", -7, want{false, 100 * time.Millisecond})
}

func TestRetryAfterIsEnough(t *testing.T) {
	// Whatever the rate, waiting exactly retryAfter is enough.
	for _, r := range []float64{0.3, 1, 3, 7, 1000, 12345.678} {
		c := newClock()
		l := New(r, 2, WithClock(c.now))
		for i := range 50 {
			ok, retry := l.Allow("k", 2)
			if ok {
				continue
			}
			if retry <= 0 || retry == Never {
				t.Fatalf("rate %v: retryAfter %v", r, retry)
			}
			c.advance(retry)
			if ok, again := l.Allow("k", 2); !ok {
				t.Fatalf("rate %v, call %d: refused again (%v) after waiting the %v it was told", r, i, again, retry)
			}
		}
	}
}

func TestZeroAndInfiniteRate(t *testing.T) {
	c := newClock()
	zero := New(0, 2, WithClock(c.now))
	check(t, zero, "a", 2, want{true, 0})
	check(t, zero, "a", 1, want{false, Never})
	c.advance(time.Hour)
	check(t, zero, "a", 1, want{false, Never})
	nan := New(math.NaN(), 0, WithClock(c.now)) // burst 0 means 1
	check(t, nan, "a", 1, want{true, 0})
	check(t, nan, "a", 1, want{false, Never})

	inf := New(math.Inf(1), 1, WithClock(c.now))
	for range 1000 {
		check(t, inf, "a", 1, want{true, 0})
	}
	if n := inf.Len(); n > 1 {
		t.Fatalf("an unlimited limiter keeps %d buckets", n)
	}
}

func TestNilAllows(t *testing.T) {
	var l *Limiter
	check(t, l, "a", 1000, want{true, 0})
	if l.Len() != 0 {
		t.Fatal("nil limiter has keys")
	}
}

func TestIdleBucketsAreDropped(t *testing.T) {
	c := newClock()
	l := New(10, 5, WithClock(c.now)) // full again 500ms after last use
	for i := range 5 {
		check(t, l, fmt.Sprint("peer", i), 1, want{true, 0})
		c.advance(10 * time.Millisecond)
	}
	check(t, l, "peer0", 5, want{false, 50 * time.Millisecond}) // 4.5 tokens: it keeps its state
	if l.Len() != 5 {
		t.Fatalf("Len = %d, want 5", l.Len())
	}
	// peer1 was last used at 10ms; at 510ms it is full and dropped on the
	// next call, while the others (used later) stay.
	c.advance(510*time.Millisecond - 50*time.Millisecond)
	check(t, l, "other", 1, want{true, 0})
	if l.Len() != 5 { // peer1 out, other in
		t.Fatalf("Len = %d after peer1 went idle, want 5", l.Len())
	}
	l.mu.Lock()
	_, kept := l.buckets["peer1"]
	l.mu.Unlock()
	if kept {
		t.Fatal("peer1 was not dropped after burst/rate idle")
	}
	// Dropping changed nothing: a new bucket is as full as the old one was.
	check(t, l, "peer1", 5, want{true, 0})

	// After a long quiet spell, each call drops at most sweepPerCall.
	for i := range 100 {
		l.Allow(fmt.Sprint("many", i), 1)
	}
	c.advance(time.Hour)
	before := l.Len()
	l.Allow("wake", 1)
	if got := l.Len(); got != before-sweepPerCall+1 {
		t.Fatalf("Len went from %d to %d in one call; want %d dropped and one added", before, got, sweepPerCall)
	}
	for range 200 {
		l.Allow("wake", 1)
	}
	if l.Len() != 1 {
		t.Fatalf("Len = %d after the idle buckets drained, want 1", l.Len())
	}
}

func TestMaxKeys(t *testing.T) {
	c := newClock()
	l := New(1, 3, WithClock(c.now), WithMaxKeys(3))
	for _, k := range []string{"a", "b", "c"} {
		check(t, l, k, 3, want{true, 0})
	}
	check(t, l, "a", 1, want{false, time.Second}) // a is now the most recent
	check(t, l, "d", 1, want{true, 0})            // drops b, the least recent
	if l.Len() != 3 {
		t.Fatalf("Len = %d, want the maximum of 3", l.Len())
	}
	check(t, l, "a", 1, want{false, time.Second}) // a kept its empty bucket
	check(t, l, "c", 1, want{false, time.Second}) // so did c
	check(t, l, "b", 3, want{true, 0})            // b starts afresh
	for i := range 1000 {
		l.Allow(fmt.Sprint(i), 1)
		if l.Len() > 3 {
			t.Fatalf("Len = %d over the maximum", l.Len())
		}
	}
}

// TestMemoryPerKey backs the figure in WithMaxKeys' doc.
func TestMemoryPerKey(t *testing.T) {
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("peer:10.%d.%d.%d", i>>16, i>>8&255, i&255)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := New(1, 10)
	for _, k := range keys {
		l.Allow(k, 1)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes a key (keys' own bytes not counted: the caller's strings are kept)", per)
	if per > 200 {
		t.Fatalf("%.0f bytes a key; WithMaxKeys' doc says about 160", per)
	}
	runtime.KeepAlive(l)
}

func TestConcurrentUse(t *testing.T) {
	// 8 goroutines share 4 keys with a burst of 100 and a negligible rate:
	// exactly 400 calls are allowed in all.
	l := New(1e-9, 100, WithMaxKeys(10))
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				if ok, _ := l.Allow(fmt.Sprint((w+i)%4), 1); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 400 {
		t.Fatalf("%d calls allowed, want 400", got)
	}
}

// BenchmarkAllow measures one call for a known client ("hot") and for a
// client whose bucket has gone idle and is dropped and made again
// ("churn": every bucket idles after 1µs).
func BenchmarkAllow(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("peer", i)
	}
	for name, l := range map[string]*Limiter{"hot": New(1e9, 1e9), "churn": New(1e9, 1000)} {
		b.Run(name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				l.Allow(keys[i&1023], 1)
				i++
			}
		})
	}
}
