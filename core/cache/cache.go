// Package cache keeps recently computed embeddings in memory: a
// least-recently-used cache bounded in bytes, safe for concurrent use.
//
// Keys (EntryKey, from Key) name the model, the options and the text;
// values are []float32 vectors, copied in by Put and out by Get, so no
// caller can change what another one reads.
//
// The byte bound counts, for every entry, the vector (4 bytes a component)
// and a fixed overhead for the entry record, its list links and its slot
// in the hash map (entryOverhead, checked against the Go heap by a test).
// Stats().Bytes never exceeds the bound.
//
// A cache large enough (at least minShardBytes a shard) is split into
// shards by key hash, each an independent LRU with its own lock and an
// equal share of the bytes, so that concurrent requests rarely wait on one
// another; see BenchmarkParallel. Eviction is then least recently used
// within a shard, which with uniformly spread keys is LRU to within a few
// entries.
package cache

import (
	"math/bits"
	"sync"
)

// entryOverhead is what one entry costs besides its vector's components:
// the entry record (88 bytes, a 96-byte allocation) and its slot in the
// shard's map (key and pointer, 56 bytes, plus a control byte, at the Swiss
// table's load factor of at most 7/8). TestMemoryAccounting measures 130 to
// 185 bytes on the Go heap, depending on how full the map tables are. Not
// counted: rounding a vector up to its allocation size class, which is
// exact for the usual widths (384, 768, 1024, 1536, 3072, 4096) and at
// most 12.5% otherwise.
const entryOverhead = 192

// entryCost is the number of bytes an entry holding n components counts.
func entryCost(n int) int64 { return int64(n)*4 + entryOverhead }

// Sharding: up to maxShards shards, but never fewer than minShardBytes in
// each, so that a small cache stays one exact LRU.
const (
	maxShards     = 16
	minShardBytes = 1 << 20
)

// Cache is a byte-bounded LRU of embedding vectors. Its methods are safe for
// concurrent use, and are no-ops on a nil or disabled cache (Get misses).
type Cache struct {
	shards []shard // nil when disabled; len is a power of two
	shift  uint    // 64 - log2(len(shards)): h1>>shift picks the shard
}

// shard is one independent LRU.
type shard struct {
	mu sync.Mutex // guards every field below
	m  map[EntryKey]*entry
	// root is the sentinel of a circular list, most recent first:
	// root.next is the newest entry, root.prev the oldest.
	root                    entry
	bytes, max              int64
	hits, misses, evictions uint64
	_                       [64]byte // keeps neighbouring shards' locks off one cache line
}

// entry is one cached vector and its place in the LRU list.
type entry struct {
	key        EntryKey
	vec        []float32 // never written after Put made it
	prev, next *entry
}

// Stats describes a cache at one moment.
type Stats struct {
	// Hits and Misses count Get calls since New.
	Hits, Misses uint64
	// Evictions counts entries dropped to make room.
	Evictions uint64
	// Bytes is what the entries count against the bound (see the package
	// doc); it never exceeds maxBytes.
	Bytes int64
	// Entries is the number of vectors held.
	Entries int
}

// New returns a cache holding at most maxBytes bytes of entries; maxBytes
// ≤ 0 returns a disabled cache, whose Get always misses at the cost of a
// nil check and which counts nothing. The cache holds no goroutines and no
// resources besides memory: drop it when done.
func New(maxBytes int64) *Cache {
	if maxBytes <= 0 {
		return &Cache{}
	}
	n := 1
	for n < maxShards && maxBytes/int64(2*n) >= minShardBytes {
		n *= 2
	}
	return newSharded(maxBytes, n)
}

// Enabled reports whether the cache holds anything at all: callers skip
// computing keys (two hashes of each text) for a disabled one.
func (c *Cache) Enabled() bool { return c != nil && c.shards != nil }

// newSharded returns a cache of n shards (a power of two) sharing maxBytes.
func newSharded(maxBytes int64, n int) *Cache {
	c := &Cache{shards: make([]shard, n), shift: uint(64 - bits.TrailingZeros(uint(n)))}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[EntryKey]*entry)
		s.root.prev, s.root.next = &s.root, &s.root
		s.max = maxBytes / int64(n)
	}
	return c
}

// shard returns the shard that holds k.
func (c *Cache) shard(k EntryKey) *shard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[k.h1>>c.shift]
}

// Get returns a copy of the vector cached under k and marks it most
// recently used; ok is false when there is none.
func (c *Cache) Get(k EntryKey) (v []float32, ok bool) {
	if c == nil || c.shards == nil {
		return nil, false
	}
	s := c.shard(k)
	s.mu.Lock()
	e, ok := s.m[k]
	if !ok {
		s.misses++
		s.mu.Unlock()
		return nil, false
	}
	s.hits++
	s.unlinkLocked(e)
	s.pushFrontLocked(e)
	vec := e.vec
	s.mu.Unlock()
	// vec is never written after Put, so it is copied outside the lock.
	out := make([]float32, len(vec))
	copy(out, vec)
	return out, true
}

// Put caches a copy of v under k as the most recently used entry, replacing
// any vector k had, and evicts least recently used entries until the bytes
// fit. A vector too big to fit at all is not cached.
func (c *Cache) Put(k EntryKey, v []float32) {
	if c == nil || c.shards == nil {
		return
	}
	s := c.shard(k)
	cost := entryCost(len(v))
	if cost > s.max {
		return
	}
	vec := make([]float32, len(v))
	copy(vec, v)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[k]; ok {
		s.bytes += cost - entryCost(len(e.vec))
		e.vec = vec
		s.unlinkLocked(e)
		s.pushFrontLocked(e)
	} else {
		e := &entry{key: k, vec: vec}
		s.m[k] = e
		s.pushFrontLocked(e)
		s.bytes += cost
	}
	// The newest entry fits on its own (cost ≤ max), so this stops
	// before reaching it.
	for s.bytes > s.max {
		old := s.root.prev
		s.unlinkLocked(old)
		delete(s.m, old.key)
		s.bytes -= entryCost(len(old.vec))
		s.evictions++
	}
}

// Stats returns the cache's counters, summed over its shards.
func (c *Cache) Stats() Stats {
	var st Stats
	if c == nil {
		return st
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Hits += s.hits
		st.Misses += s.misses
		st.Evictions += s.evictions
		st.Bytes += s.bytes
		st.Entries += len(s.m)
		s.mu.Unlock()
	}
	return st
}

func (s *shard) unlinkLocked(e *entry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (s *shard) pushFrontLocked(e *entry) {
	e.prev = &s.root
	e.next = s.root.next
	s.root.next.prev = e
	s.root.next = e
}
