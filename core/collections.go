package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/models"
)

// CollectionInfo describes a collection.
type CollectionInfo struct {
	Name string
	index.Spec
	// Live is the number of rows not deleted.
	Live int
	// Unavailable, when not nil, is why the collection did not open (its
	// files failed their checks, another process holds it); Spec and Live
	// are then zero and its calls fail as FailedPrecondition.
	Unavailable error
}

// EmbedSpec says how a collection's texts become vectors when the
// collection has no model of its own: the model (id, alias or "" for the
// default) and options. A collection created with a model ignores it.
type EmbedSpec struct {
	Model   string
	Options models.Options
}

// Record is one row to upsert: a vector, or a text that the collection's
// model embeds.
type Record struct {
	ID     string
	Vector []float32
	Text   string
	// Metadata is a JSON object, or nil.
	Metadata []byte
}

// Query is one search query: a vector, or a text embedded as records are.
type Query struct {
	Vector []float32
	Text   string
}

// SearchRequest is one Search call.
type SearchRequest struct {
	Collection string
	Queries    []Query
	K          int
	// Filter keeps rows whose JSON metadata has these top-level values
	// (index.Collection.Search).
	Filter map[string]string
	// Vectors asks for each hit's stored vector, from the same snapshot.
	Vectors bool
	// Embed embeds text queries for collections without a model.
	Embed EmbedSpec
	// MaxResponseBytes is the largest answer the transport can send (its
	// max_message_bytes); 0: no bound. A search whose answer must be
	// larger is refused before it runs.
	MaxResponseBytes int
}

// collections is the manager, or Unavailable without a data dir.
func (c *Core) collections() (*index.Manager, error) {
	if c.cols == nil {
		return nil, Unavailablef("this process serves no collections (no data dir)")
	}
	return c.cols, nil
}

// collection opens collection name.
func (c *Core) collection(name string) (*index.Collection, error) {
	m, err := c.collections()
	if err != nil {
		return nil, err
	}
	col, err := m.Get(name)
	if errors.Is(err, index.ErrNotFound) {
		// Written by another process (embedd import) since we opened?
		if _, rerr := m.Rescan(); rerr == nil {
			col, err = m.Get(name)
		}
	}
	if err != nil {
		return nil, AsError(err)
	}
	return col, nil
}

func describe(name string, col *index.Collection) CollectionInfo {
	return CollectionInfo{Name: name, Spec: col.Spec(), Live: col.Stats().Live}
}

// CreateCollection creates collection name. With a model, the dimension
// defaults to the model's and may not exceed it (a smaller one keeps the
// model's first components, Matryoshka-style); without one, dim is
// required.
func (c *Core) CreateCollection(name string, spec index.Spec) (CollectionInfo, error) {
	m, err := c.collections()
	if err != nil {
		return CollectionInfo{}, err
	}
	if spec.Model != "" {
		p, err := c.pipeline(spec.Model)
		if err != nil {
			return CollectionInfo{}, err
		}
		info := p.model.Info()
		spec.Model = info.ID
		if spec.Dim == 0 {
			spec.Dim = info.Dim
		} else if spec.Dim > info.Dim {
			return CollectionInfo{}, Errorf(InvalidArgument, "dimension", "%d is over model %s's %d", spec.Dim, info.ID, info.Dim)
		}
	}
	if spec.Dim == 0 {
		return CollectionInfo{}, Errorf(InvalidArgument, "dimension", "0; give a dimension or a model")
	}
	col, err := m.Create(name, spec)
	if err != nil {
		return CollectionInfo{}, AsError(err)
	}
	return describe(name, col), nil
}

// DropCollection drops collection name and its files.
func (c *Core) DropCollection(name string) error {
	m, err := c.collections()
	if err != nil {
		return err
	}
	if err := index.ValidName(name); err != nil {
		return AsError(err)
	}
	return fail(m.Drop(name))
}

// ListCollections describes every collection, by name: the open ones
// (those another process wrote since included) and the unavailable ones
// with the reason.
func (c *Core) ListCollections() ([]CollectionInfo, error) {
	m, err := c.collections()
	if err != nil {
		return nil, err
	}
	if _, err := m.Rescan(); err != nil {
		return nil, AsError(err)
	}
	var out []CollectionInfo
	for _, name := range m.List() {
		if col, err := m.Get(name); err == nil {
			out = append(out, describe(name, col))
		}
	}
	for name, reason := range m.Unavailable() {
		out = append(out, CollectionInfo{Name: name, Unavailable: reason})
	}
	slices.SortFunc(out, func(a, b CollectionInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// embedFor embeds texts for collection col: a collection created with a
// model uses that model, cut to the collection's dimension; otherwise es
// picks the model and options, and the result must have the collection's
// dimension.
func (c *Core) embedFor(ctx context.Context, name string, col *index.Collection, es EmbedSpec, texts []string) ([][]float32, error) {
	dim := col.Dim()
	if sp := col.Spec(); sp.Model != "" {
		es.Model, es.Options.Dimensions = sp.Model, dim
	}
	res, err := c.Embed(ctx, es.Model, texts, es.Options)
	if err != nil {
		return nil, err
	}
	if got := len(res.Vectors[0]); got != dim {
		return nil, Errorf(InvalidArgument, "embed.dimensions", "collection %s has dimension %d but model %s gives %d: set embed.dimensions or create the collection with a model", name, dim, res.Model, got)
	}
	return res.Vectors, nil
}

// Upsert stores recs in collection name, embedding the records given as
// text first; it returns once every record is durable. A bad record stores
// nothing.
func (c *Core) Upsert(ctx context.Context, name string, recs []Record, es EmbedSpec) (int, error) {
	col, err := c.collection(name)
	if err != nil {
		return 0, err
	}
	rows := make([]index.Record, len(recs))
	var texts []string
	var textIdx []int
	for i, r := range recs {
		rows[i] = index.Record{ID: r.ID, Vector: r.Vector, Metadata: r.Metadata, MetadataJSON: len(r.Metadata) > 0}
		field := fmt.Sprintf("records[%d]", i)
		switch {
		case len(r.Vector) > 0 && r.Text != "":
			return 0, Errorf(InvalidArgument, field, "give a vector or a text, not both")
		case len(r.Vector) == 0 && r.Text == "":
			return 0, Errorf(InvalidArgument, field, "has neither a vector nor a text")
		case r.Text != "":
			texts = append(texts, r.Text)
			textIdx = append(textIdx, i)
		}
	}
	if len(texts) > 0 {
		vecs, err := c.embedFor(ctx, name, col, es, texts)
		if err != nil {
			return 0, err
		}
		for j, i := range textIdx {
			rows[i].Vector = vecs[j]
		}
	}
	if err := col.Upsert(ctx, rows); err != nil {
		return 0, AsError(err)
	}
	return len(rows), nil
}

// Delete removes ids from collection name and returns how many existed.
func (c *Core) Delete(ctx context.Context, name string, ids []string) (int, error) {
	col, err := c.collection(name)
	if err != nil {
		return 0, err
	}
	n, err := col.Delete(ctx, ids)
	return n, fail(err)
}

// Get returns the records of ids that exist, in order, and the ids that
// do not.
func (c *Core) Get(name string, ids []string) (found []index.Record, missing []string, err error) {
	col, err := c.collection(name)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		r, ok, err := col.Get(id)
		if err != nil {
			return nil, nil, AsError(err)
		}
		if !ok {
			missing = append(missing, id)
			continue
		}
		found = append(found, r)
	}
	return found, missing, nil
}

// Search answers every query of req from one snapshot of the collection:
// text queries are embedded first (with the collection's model), then all
// queries are scored in one pass.
func (c *Core) Search(ctx context.Context, req SearchRequest) ([][]index.Result, error) {
	col, err := c.collection(req.Collection)
	if err != nil {
		return nil, err
	}
	if len(req.Queries) == 0 {
		return nil, Errorf(InvalidArgument, "queries", "the list is empty; send at least one query")
	}
	if len(req.Queries) > c.cfg.MaxTextsPerRequest {
		return nil, Errorf(InvalidArgument, "queries", "%d is over the limit of %d per request", len(req.Queries), c.cfg.MaxTextsPerRequest)
	}
	// Bound the work and the answer before doing anything (k itself is
	// the index's to check).
	if hits := len(req.Queries) * req.K; hits > c.cfg.MaxSearchHits {
		return nil, Errorf(InvalidArgument, "k", "%d queries × k %d = %d hits is over max_search_hits %d: send fewer queries or a smaller k", len(req.Queries), req.K, hits, c.cfg.MaxSearchHits)
	}
	if req.MaxResponseBytes > 0 && req.K > 0 && len(req.Filter) == 0 {
		// Without a filter every query gets min(k, live) hits, each at
		// least a 1-byte id and its framing (and its vector, if asked).
		hitBytes := 5
		if req.Vectors {
			hitBytes += 4*col.Dim() + 3
		}
		hits := min(req.K, col.Stats().Live)
		if least := len(req.Queries) * hits * hitBytes; least > req.MaxResponseBytes {
			return nil, Errorf(InvalidArgument, "k", "the answer to %d queries × %d hits takes at least %d bytes, over max_message_bytes %d: send fewer queries, a smaller k or no vectors", len(req.Queries), hits, least, req.MaxResponseBytes)
		}
	}
	queries := make([][]float32, len(req.Queries))
	var texts []string
	var textIdx []int
	for i, q := range req.Queries {
		switch {
		case len(q.Vector) > 0 && q.Text != "":
			return nil, Errorf(InvalidArgument, fmt.Sprintf("queries[%d]", i), "give a vector or a text, not both")
		case len(q.Vector) > 0:
			queries[i] = q.Vector
		case q.Text != "":
			texts = append(texts, q.Text)
			textIdx = append(textIdx, i)
		default:
			return nil, Errorf(InvalidArgument, fmt.Sprintf("queries[%d]", i), "has neither a vector nor a text")
		}
	}
	if len(texts) > 0 {
		vecs, err := c.embedFor(ctx, req.Collection, col, req.Embed, texts)
		if err != nil {
			return nil, err
		}
		for j, i := range textIdx {
			queries[i] = vecs[j]
		}
	}
	res, err := col.Search(ctx, queries, req.K, index.SearchOptions{Filter: req.Filter, Vectors: req.Vectors})
	return res, fail(err)
}
