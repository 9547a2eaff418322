package server

import (
	"context"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/index"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// indexService implements embeddv1.IndexServiceServer over the core's
// collections; texts go through the same embedding path as Embed.
type indexService struct {
	embeddv1.UnimplementedIndexServiceServer
	s *Server
}

// toMetric reads the wire metric; unspecified is cosine.
func toMetric(m embeddv1.Metric) (index.Metric, error) {
	switch m {
	case embeddv1.Metric_METRIC_UNSPECIFIED, embeddv1.Metric_METRIC_COSINE:
		return index.Cosine, nil
	case embeddv1.Metric_METRIC_DOT:
		return index.Dot, nil
	case embeddv1.Metric_METRIC_L2:
		return index.L2, nil
	}
	return 0, grpcError(core.Errorf(core.InvalidArgument, "metric", "%d is not a known metric", m))
}

func fromMetric(m index.Metric) embeddv1.Metric {
	switch m {
	case index.Dot:
		return embeddv1.Metric_METRIC_DOT
	case index.L2:
		return embeddv1.Metric_METRIC_L2
	}
	return embeddv1.Metric_METRIC_COSINE
}

func describe(c core.CollectionInfo) *embeddv1.Collection {
	if c.Unavailable != nil {
		return &embeddv1.Collection{Name: c.Name, Unavailable: c.Unavailable.Error()}
	}
	return &embeddv1.Collection{Name: c.Name, Dimension: uint32(c.Dim), Metric: fromMetric(c.Metric), Count: uint64(c.Live), Model: c.Model}
}

// embedSpec reads the wire embed options of a collection call.
func embedSpec(o *embeddv1.EmbedOptions) (core.EmbedSpec, error) {
	model, mo, err := options(o)
	if err != nil {
		return core.EmbedSpec{}, grpcError(err)
	}
	return core.EmbedSpec{Model: model, Options: mo}, nil
}

// CreateCollection implements embeddv1.IndexServiceServer. With a model and
// no dimension, the dimension is the model's.
func (x *indexService) CreateCollection(ctx context.Context, req *embeddv1.CreateCollectionRequest) (*embeddv1.CreateCollectionResponse, error) {
	c, err := x.s.ready()
	if err != nil {
		return nil, err
	}
	metric, err := toMetric(req.Metric)
	if err != nil {
		return nil, err
	}
	info, err := c.CreateCollection(req.Name, index.Spec{Dim: int(req.Dimension), Metric: metric, Model: req.Model})
	if err != nil {
		return nil, grpcError(err)
	}
	return &embeddv1.CreateCollectionResponse{Collection: describe(info)}, nil
}

// DropCollection implements embeddv1.IndexServiceServer.
func (x *indexService) DropCollection(ctx context.Context, req *embeddv1.DropCollectionRequest) (*embeddv1.DropCollectionResponse, error) {
	c, err := x.s.ready()
	if err != nil {
		return nil, err
	}
	if err := c.DropCollection(req.Name); err != nil {
		return nil, grpcError(err)
	}
	return &embeddv1.DropCollectionResponse{}, nil
}

// ListCollections implements embeddv1.IndexServiceServer.
func (x *indexService) ListCollections(ctx context.Context, _ *embeddv1.ListCollectionsRequest) (*embeddv1.ListCollectionsResponse, error) {
	c, err := x.s.ready()
	if err != nil {
		return nil, err
	}
	list, err := c.ListCollections()
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &embeddv1.ListCollectionsResponse{}
	for _, info := range list {
		resp.Collections = append(resp.Collections, describe(info))
	}
	return resp, nil
}

// Upsert implements embeddv1.IndexServiceServer: records given as text are
// embedded first; the call returns once every record is durable.
func (x *indexService) Upsert(ctx context.Context, req *embeddv1.UpsertRequest) (*embeddv1.UpsertResponse, error) {
	c, err := x.s.ready()
	if err != nil {
		return nil, err
	}
	es, err := embedSpec(req.Embed)
	if err != nil {
		return nil, err
	}
	recs := make([]core.Record, len(req.Records))
	for i, r := range req.Records {
		recs[i] = core.Record{ID: r.Id, Vector: r.Vector, Text: r.Text, Metadata: r.Metadata}
	}
	n, err := c.Upsert(ctx, req.Collection, recs, es)
	if err != nil {
		return nil, grpcError(err)
	}
	return &embeddv1.UpsertResponse{Upserted: uint64(n)}, nil
}

// Delete implements embeddv1.IndexServiceServer.
func (x *indexService) Delete(ctx context.Context, req *embeddv1.DeleteRequest) (*embeddv1.DeleteResponse, error) {
	c, err := x.s.ready()
	if err != nil {
		return nil, err
	}
	n, err := c.Delete(ctx, req.Collection, req.Ids)
	if err != nil {
		return nil, grpcError(err)
	}
	return &embeddv1.DeleteResponse{Deleted: uint64(n)}, nil
}

// Get implements embeddv1.IndexServiceServer.
func (x *indexService) Get(ctx context.Context, req *embeddv1.GetRequest) (*embeddv1.GetResponse, error) {
	c, err := x.s.ready()
	if err != nil {
		return nil, err
	}
	found, missing, err := c.Get(req.Collection, req.Ids)
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &embeddv1.GetResponse{Missing: missing}
	for _, r := range found {
		resp.Records = append(resp.Records, &embeddv1.Record{Id: r.ID, Vector: r.Vector, Metadata: r.Metadata})
	}
	return resp, nil
}

// Search implements embeddv1.IndexServiceServer: text queries are embedded
// with the collection's model, then every query is answered from one
// snapshot (ids, scores, metadata and vectors alike).
func (x *indexService) Search(ctx context.Context, req *embeddv1.SearchRequest) (*embeddv1.SearchResponse, error) {
	c, err := x.s.ready()
	if err != nil {
		return nil, err
	}
	es, err := embedSpec(req.Embed)
	if err != nil {
		return nil, err
	}
	sr := core.SearchRequest{Collection: req.Collection, K: int(req.K), Filter: req.Filter, Vectors: req.IncludeVectors,
		Embed: es, Queries: make([]core.Query, len(req.Queries)), MaxResponseBytes: x.s.cfg.MaxMessageBytes}
	for i, q := range req.Queries {
		switch v := q.Query.(type) {
		case *embeddv1.Query_Vector:
			sr.Queries[i].Vector = v.Vector.GetValues()
		case *embeddv1.Query_Text:
			sr.Queries[i].Text = v.Text
		}
	}
	results, err := c.Search(ctx, sr)
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &embeddv1.SearchResponse{Results: make([]*embeddv1.SearchResult, len(results))}
	for i, hits := range results {
		out := &embeddv1.SearchResult{Hits: make([]*embeddv1.Hit, len(hits))}
		for j, h := range hits {
			hit := &embeddv1.Hit{Id: h.ID, Score: h.Score, Vector: h.Vector}
			if req.IncludeMetadata {
				hit.Metadata = h.Metadata
			}
			out.Hits[j] = hit
		}
		resp.Results[i] = out
	}
	return resp, nil
}

// Compact implements embeddv1.IndexServiceServer: the collection's live
// records are rewritten into new files while searches and writes go on.
func (x *indexService) Compact(ctx context.Context, req *embeddv1.CompactRequest) (*embeddv1.CompactResponse, error) {
	c, err := x.s.ready()
	if err != nil {
		return nil, err
	}
	res, err := c.Compact(ctx, req.Name)
	if err != nil {
		return nil, grpcError(err)
	}
	return &embeddv1.CompactResponse{Collection: describe(res.Collection), RowsBefore: uint64(res.RowsBefore), RowsAfter: uint64(res.RowsAfter)}, nil
}
