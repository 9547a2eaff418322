package cache

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// vec returns a deterministic vector of n components for seed.
func vec(seed, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(seed*1000 + i)
	}
	return v
}

func keyN(i int) EntryKey { return Key("m", 0, 0, "text "+strconv.Itoa(i)) }

// contents lists a one-shard cache's keys, most recently used first, and
// checks the list against the map and the byte count.
func contents(t *testing.T, c *Cache) []EntryKey {
	t.Helper()
	if len(c.shards) != 1 {
		t.Fatalf("contents wants one shard, the cache has %d", len(c.shards))
	}
	s := &c.shards[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []EntryKey
	var bytes int64
	for e := s.root.next; e != &s.root; e = e.next {
		if e.next.prev != e {
			t.Fatalf("broken list at %v", e.key)
		}
		if s.m[e.key] != e {
			t.Fatalf("list entry %v is not the map's", e.key)
		}
		keys = append(keys, e.key)
		bytes += entryCost(len(e.vec))
	}
	if len(keys) != len(s.m) {
		t.Fatalf("list has %d entries, map %d", len(keys), len(s.m))
	}
	if bytes != s.bytes {
		t.Fatalf("entries add up to %d bytes, the shard counts %d", bytes, s.bytes)
	}
	return keys
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	const dims = 16
	c := New(3 * entryCost(dims)) // room for exactly three
	a, b, d, e := keyN(1), keyN(2), keyN(3), keyN(4)
	c.Put(a, vec(1, dims))
	c.Put(b, vec(2, dims))
	c.Put(d, vec(3, dims))
	if got, want := contents(t, c), []EntryKey{d, b, a}; !slices.Equal(got, want) {
		t.Fatalf("after three puts: %v, want %v", got, want)
	}
	if _, ok := c.Get(a); !ok { // a becomes the most recent; b is now the oldest
		t.Fatal("a missing before any eviction")
	}
	c.Put(e, vec(4, dims))
	if got, want := contents(t, c), []EntryKey{e, a, d}; !slices.Equal(got, want) {
		t.Fatalf("after touching a and adding e: %v, want %v", got, want)
	}
	if _, ok := c.Get(b); ok {
		t.Fatal("b (least recently used) was not evicted")
	}
	// Replacing an entry refreshes it without growing the cache.
	c.Put(d, vec(5, dims))
	if got, want := contents(t, c), []EntryKey{d, e, a}; !slices.Equal(got, want) {
		t.Fatalf("after replacing d: %v, want %v", got, want)
	}
	if v, _ := c.Get(d); !slices.Equal(v, vec(5, dims)) {
		t.Fatalf("d = %v after replacement, want the new vector", v)
	}
	st := c.Stats()
	want := Stats{Hits: 2, Misses: 1, Evictions: 1, Bytes: 3 * entryCost(dims), Entries: 3}
	if st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}
}

func TestBiggerVectorEvictsSeveral(t *testing.T) {
	c := New(4 * entryCost(8))
	for i := range 4 {
		c.Put(keyN(i), vec(i, 8))
	}
	// A vector that counts as much as three small entries evicts the three
	// oldest, and no more.
	big := (3*entryCost(8) - entryOverhead) / 4
	c.Put(keyN(9), vec(9, int(big)))
	got := contents(t, c)
	if want := []EntryKey{keyN(9), keyN(3)}; !slices.Equal(got, want) {
		t.Fatalf("after a big put: %v, want %v", got, want)
	}
	if st := c.Stats(); st.Evictions != 3 {
		t.Fatalf("Evictions = %d, want 3", st.Evictions)
	}
}

func TestTooBigIsNotCached(t *testing.T) {
	c := New(entryCost(100))
	c.Put(keyN(1), vec(1, 100))
	c.Put(keyN(2), vec(2, 101)) // can never fit: must not evict keyN(1)
	if _, ok := c.Get(keyN(2)); ok {
		t.Fatal("a vector over the whole bound was cached")
	}
	if _, ok := c.Get(keyN(1)); !ok {
		t.Fatal("a put that could not fit evicted an entry")
	}
}

func TestByteBoundNeverExceeded(t *testing.T) {
	for _, maxBytes := range []int64{1000, 10_000, 100_000, 4 << 20, 64 << 20} {
		t.Run(strconv.FormatInt(maxBytes, 10), func(t *testing.T) {
			c := New(maxBytes)
			r := rand.New(rand.NewPCG(1, uint64(maxBytes)))
			for i := range 20_000 {
				k := keyN(r.IntN(2000))
				if r.IntN(3) == 0 {
					c.Get(k)
				} else {
					c.Put(k, vec(i, r.IntN(2048)))
				}
				if i%97 == 0 {
					st := c.Stats()
					if st.Bytes > maxBytes || st.Bytes < 0 {
						t.Fatalf("op %d: Bytes = %d, bound %d", i, st.Bytes, maxBytes)
					}
				}
			}
			st := c.Stats()
			if st.Bytes > maxBytes {
				t.Fatalf("Bytes = %d, bound %d", st.Bytes, maxBytes)
			}
			if maxBytes >= 100_000 && st.Entries == 0 {
				t.Fatalf("a %d-byte cache holds nothing: %+v", maxBytes, st)
			}
			if len(c.shards) == 1 {
				contents(t, c)
			}
		})
	}
}

func TestShardCount(t *testing.T) {
	for _, tc := range []struct {
		maxBytes int64
		shards   int
	}{
		{1, 1}, {1 << 20, 1}, {2<<20 - 1, 1}, {2 << 20, 2}, {4 << 20, 4},
		{8 << 20, 8}, {16 << 20, 16}, {64 << 20, 16}, {1 << 40, 16},
	} {
		c := New(tc.maxBytes)
		if len(c.shards) != tc.shards {
			t.Errorf("New(%d) has %d shards, want %d", tc.maxBytes, len(c.shards), tc.shards)
		}
		var sum int64
		for i := range c.shards {
			sum += c.shards[i].max
		}
		if sum > tc.maxBytes {
			t.Errorf("New(%d): shard bounds add up to %d", tc.maxBytes, sum)
		}
	}
}

func TestCopiesInAndOut(t *testing.T) {
	c := New(1 << 20)
	k := keyN(1)
	in := []float32{1, 2, 3}
	c.Put(k, in)
	in[0] = 99 // the caller reuses its slice
	out, ok := c.Get(k)
	if !ok || !slices.Equal(out, []float32{1, 2, 3}) {
		t.Fatalf("Get = %v, %v after the caller changed its input; want [1 2 3]", out, ok)
	}
	out[1] = 99 // the caller scribbles on its result
	again, _ := c.Get(k)
	if !slices.Equal(again, []float32{1, 2, 3}) {
		t.Fatalf("Get = %v after a caller changed an earlier result; want [1 2 3]", again)
	}
	if &again[0] == &out[0] {
		t.Fatal("two Gets share memory")
	}
}

func TestDisabled(t *testing.T) {
	for name, c := range map[string]*Cache{"zero": New(0), "negative": New(-5), "nil": nil} {
		t.Run(name, func(t *testing.T) {
			c.Put(keyN(1), []float32{1})
			if v, ok := c.Get(keyN(1)); ok || v != nil {
				t.Fatalf("Get = %v, %v on a disabled cache", v, ok)
			}
			if st := c.Stats(); st != (Stats{}) {
				t.Fatalf("Stats = %+v on a disabled cache, want zeros", st)
			}
		})
	}
	c := New(0)
	k := keyN(1)
	if n := testing.AllocsPerRun(100, func() { c.Get(k) }); n != 0 {
		t.Fatalf("Get on a disabled cache allocates %v times", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	const (
		workers = 8
		ops     = 5000
		dims    = 32
	)
	for _, shards := range []int{1, 16} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			maxBytes := 200 * entryCost(dims)
			c := newSharded(maxBytes, shards)
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(w), 7))
					for range ops {
						i := r.IntN(500)
						k := keyN(i)
						if v, ok := c.Get(k); ok {
							if !slices.Equal(v, vec(i, dims)) {
								errs <- fmt.Errorf("key %d holds %v", i, v[:2])
								return
							}
							v[0] = -1 // must not reach the cache
						} else {
							c.Put(k, vec(i, dims))
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			st := c.Stats()
			if st.Bytes > maxBytes || st.Hits+st.Misses != workers*ops {
				t.Fatalf("Stats = %+v: over the bound of %d, or Gets miscounted", st, maxBytes)
			}
			if st.Bytes != int64(st.Entries)*entryCost(dims) {
				t.Fatalf("Stats = %+v: bytes do not match the entries", st)
			}
		})
	}
}

// TestMemoryAccounting checks entryOverhead against the Go heap: what a
// cache counts must cover what it holds, without counting much more.
func TestMemoryAccounting(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MB")
	}
	for _, dims := range []int{8, 384} {
		for _, n := range []int{10_000, 60_000, 100_000, 120_000} {
			keys := make([]EntryKey, n)
			for i := range keys {
				keys[i] = keyN(i)
			}
			v := make([]float32, dims)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			c := New(1 << 40)
			for _, k := range keys {
				c.Put(k, v)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			heap := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
			counted := float64(c.Stats().Bytes) / float64(n)
			t.Logf("%d entries of %d dims: %.0f heap bytes an entry, %.0f counted", n, dims, heap, counted)
			if heap > counted || heap < counted*0.6 {
				t.Errorf("%d entries of %d dims: the heap holds %.0f bytes an entry, the cache counts %.0f", n, dims, heap, counted)
			}
			runtime.KeepAlive(c)
		}
	}
}

func TestKeyTellsInputsApart(t *testing.T) {
	base := Key("m", 0, 0, "hello")
	if Key("m", 0, 0, "hello") != base {
		t.Fatal("equal inputs give different keys")
	}
	for name, k := range map[string]EntryKey{
		"model":     Key("m2", 0, 0, "hello"),
		"normalize": Key("m", 1, 0, "hello"),
		"dims":      Key("m", 0, 64, "hello"),
		"text":      Key("m", 0, 0, "hellp"),
		"length":    Key("m", 0, 0, "hello "),
		"empty":     Key("m", 0, 0, ""),
	} {
		if k == base {
			t.Errorf("a different %s gives the same key", name)
		}
	}
	// Many texts of one length: no two keys alike, and both hashes
	// spread (a constant hash would still pass the equality check).
	seen := make(map[EntryKey]int)
	h1s := make(map[uint64]bool)
	h2s := make(map[uint64]bool)
	for i := range 100_000 {
		k := Key("m", 0, 0, fmt.Sprintf("%08d", i))
		if j, dup := seen[k]; dup {
			t.Fatalf("texts %d and %d share a key", i, j)
		}
		seen[k] = i
		h1s[k.h1], h2s[k.h2] = true, true
	}
	if len(h1s) != len(seen) || len(h2s) != len(seen) {
		t.Fatalf("%d texts gave %d and %d distinct hashes", len(seen), len(h1s), len(h2s))
	}
}

func BenchmarkKey(b *testing.B) {
	text := string(make([]byte, 200))
	for b.Loop() {
		Key("minilm", 0, 0, text)
	}
}

// benchKeys are the working set of the benchmarks: 4096 texts of 384-wide
// vectors, which fit the benchmarks' 64 MiB cache.
func benchKeys() ([]EntryKey, []float32) {
	keys := make([]EntryKey, 4096)
	for i := range keys {
		keys[i] = keyN(i)
	}
	return keys, vec(1, 384)
}

func BenchmarkGet(b *testing.B) {
	keys, v := benchKeys()
	c := New(64 << 20)
	for _, k := range keys {
		c.Put(k, v)
	}
	i := 0
	for b.Loop() {
		c.Get(keys[i&4095])
		i++
	}
}

func BenchmarkPut(b *testing.B) {
	keys, v := benchKeys()
	c := New(64 << 20)
	i := 0
	for b.Loop() {
		c.Put(keys[i&4095], v)
		i++
	}
}

func BenchmarkGetDisabled(b *testing.B) {
	c := New(0)
	k := keyN(1)
	for b.Loop() {
		c.Get(k)
	}
}

// BenchmarkParallel is the contention test behind sharding: every
// goroutine does about 7/8 Gets (hits) and 1/8 Puts over a shared working
// set. Run it with -cpu 1,2,4,8 to compare one lock with sixteen; the
// 8-wide vectors show the locking, the 384-wide ones a real model's copies.
func BenchmarkParallel(b *testing.B) {
	for _, dims := range []int{8, 384} {
		for _, shards := range []int{1, 16} {
			b.Run(fmt.Sprintf("dims=%d/shards=%d", dims, shards), func(b *testing.B) {
				keys, _ := benchKeys()
				v := vec(1, dims)
				c := newSharded(64<<20, shards)
				for _, k := range keys {
					c.Put(k, v)
				}
				b.RunParallel(func(pb *testing.PB) {
					r := rand.New(rand.NewPCG(rand.Uint64(), 1))
					for pb.Next() {
						n := r.Uint32()
						k := keys[n&4095]
						if n>>29 == 0 {
							c.Put(k, v)
						} else {
							c.Get(k)
						}
					}
				})
			})
		}
	}
}

// TestEnabled: a cache of no bytes (or none at all) is disabled, so callers
// can skip its keys; one with room is enabled.
func TestEnabled(t *testing.T) {
	var none *Cache
	for _, c := range []struct {
		c    *Cache
		want bool
	}{{none, false}, {New(0), false}, {New(-1), false}, {New(1 << 20), true}} {
		if got := c.c.Enabled(); got != c.want {
			t.Errorf("Enabled() = %v, want %v", got, c.want)
		}
	}
}
