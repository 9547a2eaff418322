package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"

	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// ShardOf returns the shard, in [0, n), that holds the record id when a
// collection is split over n servers: the 64-bit FNV-1a hash of the id's
// bytes, modulo n. Shards.Upsert and Shards.Delete route by it, and so
// must anything else that writes to a sharded collection (embedctl upsert
// --shards does). Changing n moves most records: a sharded collection keeps
// its number of shards for life. It panics if n < 1.
func ShardOf(id string, n int) int {
	if n < 1 {
		panic(fmt.Sprintf("embedd/client: ShardOf: %d shards", n))
	}
	h := fnv.New64a()
	h.Write([]byte(id)) // never fails
	return int(h.Sum64() % uint64(n))
}

// Shards is one client per shard of collections split over several
// servers by ShardOf (such as the pods of a StatefulSet): writes go to the
// shard of each record, and Search asks every shard and merges the
// answers exactly. Its methods are safe for concurrent use.
type Shards struct {
	clients []*Client
	targets []string

	mu      sync.Mutex
	metrics map[string]embeddv1.Metric // by collection, once learnt
}

// DialShards dials every target, in shard order (shard i is targets[i]),
// with the same options; see Dial. The caller closes the result.
func DialShards(ctx context.Context, targets []string, opts ...Option) (*Shards, error) {
	if len(targets) == 0 {
		return nil, errors.New("embedd/client: DialShards: no targets")
	}
	s := &Shards{targets: slices.Clone(targets), metrics: map[string]embeddv1.Metric{}}
	for _, t := range targets {
		c, err := Dial(ctx, t, opts...)
		if err != nil {
			return nil, errors.Join(err, s.Close())
		}
		s.clients = append(s.clients, c)
	}
	return s, nil
}

// Len is the number of shards.
func (s *Shards) Len() int { return len(s.clients) }

// Shard returns the client of shard i.
func (s *Shards) Shard(i int) *Client { return s.clients[i] }

// Close closes every shard's client.
func (s *Shards) Close() error {
	var errs []error
	for _, c := range s.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// ShardError is the failure of one shard.
type ShardError struct {
	// Shard is the shard's index, Target its address.
	Shard  int
	Target string
	// Err is the shard's error; status.Code sees through ShardError to it.
	Err error
}

// Error implements error.
func (e *ShardError) Error() string {
	return fmt.Sprintf("shard %d (%s): %v", e.Shard, e.Target, e.Err)
}

// Unwrap returns the shard's error.
func (e *ShardError) Unwrap() error { return e.Err }

// each runs fn on every shard for which want is true, concurrently, and
// returns the failures in shard order.
func (s *Shards) each(want func(i int) bool, fn func(i int, c *Client) error) []*ShardError {
	errs := make([]*ShardError, len(s.clients))
	var wg sync.WaitGroup
	for i, c := range s.clients {
		if want(i) {
			wg.Go(func() {
				if err := fn(i, c); err != nil {
					errs[i] = &ShardError{Shard: i, Target: s.targets[i], Err: err}
				}
			})
		}
	}
	wg.Wait()
	return slices.DeleteFunc(errs, func(e *ShardError) bool { return e == nil })
}

// joined is the error of a call that failed on some shards, nil if none.
func joined(call string, errs []*ShardError) error {
	if len(errs) == 0 {
		return nil
	}
	es := make([]error, len(errs))
	for i, e := range errs {
		es[i] = e
	}
	return fmt.Errorf("embedd/client: sharded %s: %w", call, errors.Join(es...))
}

// byShard splits items by the shard of their id.
func byShard[T any](n int, items []T, id func(T) string) [][]T {
	parts := make([][]T, n)
	for _, it := range items {
		i := ShardOf(id(it), n)
		parts[i] = append(parts[i], it)
	}
	return parts
}

// Upsert writes each record to its shard (ShardOf), the shards
// concurrently, and returns how many were written. On error some shards
// may have written their part (upserts are idempotent: retry the whole
// request).
func (s *Shards) Upsert(ctx context.Context, req *embeddv1.UpsertRequest) (uint64, error) {
	parts := byShard(len(s.clients), req.GetRecords(), (*embeddv1.Record).GetId)
	var mu sync.Mutex
	var total uint64
	errs := s.each(func(i int) bool { return len(parts[i]) > 0 }, func(i int, c *Client) error {
		n, err := c.Upsert(ctx, &embeddv1.UpsertRequest{Collection: req.GetCollection(), Records: parts[i], Embed: req.GetEmbed()})
		mu.Lock()
		total += n
		mu.Unlock()
		return err
	})
	return total, joined("Upsert", errs)
}

// Delete removes the records ids of collection from their shards and
// returns how many existed.
func (s *Shards) Delete(ctx context.Context, collection string, ids []string) (uint64, error) {
	parts := byShard(len(s.clients), ids, func(id string) string { return id })
	var mu sync.Mutex
	var total uint64
	errs := s.each(func(i int) bool { return len(parts[i]) > 0 }, func(i int, c *Client) error {
		n, err := c.Delete(ctx, collection, parts[i])
		mu.Lock()
		total += n
		mu.Unlock()
		return err
	})
	return total, joined("Delete", errs)
}

// Get returns the records ids of collection that exist, from their
// shards, in request order, and lists the ids that do not.
func (s *Shards) Get(ctx context.Context, collection string, ids []string) (*embeddv1.GetResponse, error) {
	parts := byShard(len(s.clients), ids, func(id string) string { return id })
	answers := make([]*embeddv1.GetResponse, len(s.clients))
	errs := s.each(func(i int) bool { return len(parts[i]) > 0 }, func(i int, c *Client) error {
		var err error
		answers[i], err = c.Get(ctx, collection, parts[i])
		return err
	})
	if err := joined("Get", errs); err != nil {
		return nil, err
	}
	found := map[string]*embeddv1.Record{}
	for _, a := range answers {
		for _, r := range a.GetRecords() {
			found[r.GetId()] = r
		}
	}
	out := &embeddv1.GetResponse{}
	for _, id := range ids {
		if r, ok := found[id]; ok {
			out.Records = append(out.Records, r)
		} else {
			out.Missing = append(out.Missing, id)
		}
	}
	return out, nil
}

// ShardedSearchOptions change Shards.Search.
type ShardedSearchOptions struct {
	// AllowPartial merges the answers of the shards that answered when
	// others fail, listing those in ShardedResults.Failed; by default any
	// failing shard fails the search, since the merged answer could miss
	// the true nearest records. The search fails anyway when no shard
	// answers.
	AllowPartial bool
}

// ShardedResults is the merged answer of Shards.Search.
type ShardedResults struct {
	// Results holds one result per query, in order, each the k best hits
	// of all shards that answered, ordered as one server orders them.
	Results []*embeddv1.SearchResult
	// Failed lists the shards that did not answer, in shard order; it is
	// empty unless ShardedSearchOptions.AllowPartial.
	Failed []*ShardError
}

// Search is an exact scatter-gather search: every shard is asked for the
// k best hits of each query, and the answers are merged by score (largest
// similarity first; smallest distance first under L2), ties by id, and cut
// to k, which is what one server holding every record answers. The
// collection's metric is read from the shards once (ListCollections) and
// remembered.
func (s *Shards) Search(ctx context.Context, req *embeddv1.SearchRequest, opts ShardedSearchOptions) (*ShardedResults, error) {
	metric, err := s.metric(ctx, req.GetCollection())
	if err != nil {
		return nil, err
	}
	answers := make([][]*embeddv1.SearchResult, len(s.clients))
	failed := s.each(func(int) bool { return true }, func(i int, c *Client) error {
		var err error
		answers[i], err = c.Search(ctx, req)
		return err
	})
	if len(failed) == len(s.clients) || (len(failed) > 0 && !opts.AllowPartial) {
		return nil, joined("Search", failed)
	}
	out := &ShardedResults{Results: make([]*embeddv1.SearchResult, len(req.GetQueries())), Failed: failed}
	for q := range out.Results {
		var hits []*embeddv1.Hit
		for _, a := range answers {
			if a != nil {
				hits = append(hits, a[q].GetHits()...)
			}
		}
		slices.SortFunc(hits, func(a, b *embeddv1.Hit) int {
			c := cmp.Compare(b.GetScore(), a.GetScore())
			if metric == embeddv1.Metric_METRIC_L2 {
				c = -c
			}
			return cmp.Or(c, cmp.Compare(a.GetId(), b.GetId()))
		})
		out.Results[q] = &embeddv1.SearchResult{Hits: hits[:min(len(hits), int(req.GetK()))]}
	}
	return out, nil
}

// metric returns the metric of collection, asking the shards the first
// time: every shard that answers must hold the collection with the same
// metric.
func (s *Shards) metric(ctx context.Context, collection string) (embeddv1.Metric, error) {
	s.mu.Lock()
	m, ok := s.metrics[collection]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	found := make([]*embeddv1.Collection, len(s.clients))
	errs := s.each(func(int) bool { return true }, func(i int, c *Client) error {
		colls, err := c.ListCollections(ctx)
		if err != nil {
			return err
		}
		for _, coll := range colls {
			if coll.GetName() == collection {
				found[i] = coll
				return nil
			}
		}
		return fmt.Errorf("no collection %q", collection)
	})
	var first *embeddv1.Collection
	for i, coll := range found {
		switch {
		case coll == nil:
		case first == nil:
			first = coll
		case coll.GetMetric() != first.GetMetric() || coll.GetDimension() != first.GetDimension():
			return 0, fmt.Errorf("embedd/client: sharded Search: shard %d (%s) has collection %q with metric %v, dimension %d; an earlier shard has %v, %d",
				i, s.targets[i], collection, coll.GetMetric(), coll.GetDimension(), first.GetMetric(), first.GetDimension())
		}
	}
	if first == nil {
		return 0, joined("Search", errs)
	}
	s.mu.Lock()
	s.metrics[collection] = first.GetMetric()
	s.mu.Unlock()
	return first.GetMetric(), nil
}
