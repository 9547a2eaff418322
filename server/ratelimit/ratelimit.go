// Package ratelimit limits how fast each client may call: one token bucket
// (golang.org/x/time/rate) per client key, such as an API key or a peer
// address.
//
// Memory stays bounded however many distinct clients call. A bucket left
// unused for burst/rate seconds has refilled completely, so it behaves
// exactly like a new one: such buckets are dropped, a few at a time, by
// later Allow calls (no background goroutine). On top of that, at most
// MaxKeys buckets are kept; past that, the least recently used is dropped
// even if it is not full yet, which hands that client a fresh burst. Size
// MaxKeys above the number of clients expected within one refill time.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Never is the retryAfter of a call that waiting cannot help: its cost is
// over the burst, or the rate is zero and the burst is spent.
const Never = time.Duration(math.MaxInt64)

// sweepPerCall bounds the idle buckets one Allow drops, so that no call
// pays for a long quiet spell; each call adds at most one bucket, so idle
// ones still drain faster than they can pile up.
const sweepPerCall = 8

// Limiter holds a token bucket per client key. Its methods are safe for
// concurrent use; a nil *Limiter allows everything.
type Limiter struct {
	limit   rate.Limit
	burst   int
	idle    time.Duration // a bucket unused this long is full: dropping it changes nothing
	maxKeys int
	now     func() time.Time

	mu      sync.Mutex // guards buckets and the list at root
	buckets map[string]*bucket
	// root is the sentinel of a circular list of buckets, most recently
	// used first: root.prev is the one unused longest.
	root bucket
}

// bucket is one client's token bucket and its place in the list.
type bucket struct {
	key        string
	lim        *rate.Limiter // has its own lock; used outside Limiter.mu
	last       time.Time     // latest Allow for key
	prev, next *bucket
}

// options are New's settings; each Option documents its default.
type options struct {
	maxKeys int
	now     func() time.Time
}

// Option changes a setting of New.
type Option func(*options)

// WithMaxKeys bounds the number of client buckets kept; default 100000. A
// bucket costs about 160 bytes besides its key (TestMemoryPerKey), so the
// default holds the limiter under about 20 MB with address-sized keys.
// n < 1 means 1.
func WithMaxKeys(n int) Option {
	return func(o *options) { o.maxKeys = max(n, 1) }
}

// WithClock sets the source of the current time; default time.Now. Tests
// use it to step time by hand.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// New returns a limiter that lets each key make ratePerSec calls a second
// on average and up to burst at once. ratePerSec may be math.Inf(1) (no
// limit); ratePerSec ≤ 0 (or NaN) lets each key spend its burst and
// nothing more. burst < 1 means 1. The limiter holds no goroutines: drop it
// when done.
func New(ratePerSec float64, burst int, opts ...Option) *Limiter {
	o := options{maxKeys: 100_000, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if !(ratePerSec > 0) { // also catches NaN
		ratePerSec = 0
	}
	burst = max(burst, 1)
	l := &Limiter{
		limit:   rate.Limit(ratePerSec),
		burst:   burst,
		idle:    durationFor(float64(burst), ratePerSec),
		maxKeys: o.maxKeys,
		now:     o.now,
		buckets: make(map[string]*bucket),
	}
	l.root.prev, l.root.next = &l.root, &l.root
	return l
}

// Allow takes cost tokens (at least one) from key's bucket if it holds
// them. When it does not, nothing is taken, ok is false, and retryAfter is
// how long until the bucket will hold cost tokens if no other call for key
// takes any, rounded up to the microsecond; Never when waiting cannot help.
func (l *Limiter) Allow(key string, cost int) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	cost = max(cost, 1)
	lim, now := l.bucket(key)
	if lim.AllowN(now, cost) {
		return true, 0
	}
	if cost > l.burst {
		return false, Never
	}
	return false, max(durationFor(float64(cost)-lim.TokensAt(now), float64(l.limit)), time.Microsecond)
}

// Len returns the number of client buckets kept.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// bucket finds or makes key's bucket, marks it used now, and drops a few
// idle buckets and, past maxKeys, the least recently used one.
func (l *Limiter) bucket(key string) (*rate.Limiter, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for i := 0; i < sweepPerCall; i++ {
		old := l.root.prev
		if old == &l.root || now.Sub(old.last) < l.idle {
			break
		}
		l.removeLocked(old)
	}
	b, ok := l.buckets[key]
	if ok {
		l.unlinkLocked(b)
	} else {
		if len(l.buckets) >= l.maxKeys {
			l.removeLocked(l.root.prev)
		}
		b = &bucket{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	if now.After(b.last) {
		b.last = now
	}
	l.pushFrontLocked(b)
	return b.lim, now
}

func (l *Limiter) removeLocked(b *bucket) {
	l.unlinkLocked(b)
	delete(l.buckets, b.key)
}

func (l *Limiter) unlinkLocked(b *bucket) {
	b.prev.next = b.next
	b.next.prev = b.prev
	b.prev, b.next = nil, nil
}

func (l *Limiter) pushFrontLocked(b *bucket) {
	b.prev = &l.root
	b.next = l.root.next
	l.root.next.prev = b
	l.root.next = b
}

// durationFor is the time perSec tokens a second take to make tokens,
// rounded up to the microsecond (forgiving a nanosecond of floating-point
// noise, so that 1 token at 10/s is 100ms, not 100.001ms); Never if that is
// beyond time.Duration.
func durationFor(tokens, perSec float64) time.Duration {
	if tokens <= 0 {
		return 0
	}
	ns := tokens / perSec * 1e9 // +Inf when perSec is 0
	if ns >= math.MaxInt64-1000 {
		return Never
	}
	return time.Duration(math.Ceil((ns-1)/1e3)) * time.Microsecond
}
