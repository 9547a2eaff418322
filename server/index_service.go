package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/index"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// indexService implements embeddv1.IndexServiceServer over the server's
// collection manager; texts go through the same embedding path as Embed.
type indexService struct {
	embeddv1.UnimplementedIndexServiceServer
	s *Server
}

// indexStatus maps index errors to gRPC codes.
func indexStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, index.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, index.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, index.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, index.ErrReadOnly):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, index.ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	}
	return toStatus(err)
}

func (x *indexService) manager() (*index.Manager, error) {
	st := x.s.state.Load()
	if st == nil {
		return nil, status.Error(codes.Unavailable, "the server is still starting; retry shortly")
	}
	return st.collections, nil
}

func (x *indexService) collection(name string) (*index.Collection, error) {
	m, err := x.manager()
	if err != nil {
		return nil, err
	}
	c, err := m.Get(name)
	if err != nil {
		return nil, indexStatus(err)
	}
	return c, nil
}

func toMetric(m embeddv1.Metric) (index.Metric, error) {
	switch m {
	case embeddv1.Metric_METRIC_UNSPECIFIED, embeddv1.Metric_METRIC_COSINE:
		return index.Cosine, nil
	case embeddv1.Metric_METRIC_DOT:
		return index.Dot, nil
	case embeddv1.Metric_METRIC_L2:
		return index.L2, nil
	}
	return 0, status.Errorf(codes.InvalidArgument, "metric: %d is not a known metric", m)
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

func describe(name string, c *index.Collection) *embeddv1.Collection {
	sp := c.Spec()
	return &embeddv1.Collection{Name: name, Dimension: uint32(sp.Dim), Metric: fromMetric(sp.Metric), Count: uint64(c.Stats().Live), Model: sp.Model}
}

// CreateCollection implements embeddv1.IndexServiceServer. With a model and
// no dimension, the dimension is the model's.
func (x *indexService) CreateCollection(ctx context.Context, req *embeddv1.CreateCollectionRequest) (*embeddv1.CreateCollectionResponse, error) {
	m, err := x.manager()
	if err != nil {
		return nil, err
	}
	metric, err := toMetric(req.Metric)
	if err != nil {
		return nil, err
	}
	dim := int(req.Dimension)
	model := req.Model
	if model != "" {
		p, err := x.s.pipeline(model)
		if err != nil {
			return nil, err
		}
		info := p.model.Info()
		model = info.ID
		if dim == 0 {
			dim = info.Dim
		} else if dim > info.Dim {
			return nil, status.Errorf(codes.InvalidArgument, "dimension: %d is over model %s's %d", dim, info.ID, info.Dim)
		}
	}
	if dim == 0 {
		return nil, status.Error(codes.InvalidArgument, "dimension: 0; give a dimension or a model")
	}
	c, err := m.Create(req.Name, index.Spec{Dim: dim, Metric: metric, Model: model})
	if err != nil {
		return nil, indexStatus(err)
	}
	return &embeddv1.CreateCollectionResponse{Collection: describe(req.Name, c)}, nil
}

// DropCollection implements embeddv1.IndexServiceServer.
func (x *indexService) DropCollection(ctx context.Context, req *embeddv1.DropCollectionRequest) (*embeddv1.DropCollectionResponse, error) {
	m, err := x.manager()
	if err != nil {
		return nil, err
	}
	if err := index.ValidName(req.Name); err != nil {
		return nil, indexStatus(err)
	}
	if err := m.Drop(req.Name); err != nil {
		return nil, indexStatus(err)
	}
	return &embeddv1.DropCollectionResponse{}, nil
}

// ListCollections implements embeddv1.IndexServiceServer.
func (x *indexService) ListCollections(ctx context.Context, _ *embeddv1.ListCollectionsRequest) (*embeddv1.ListCollectionsResponse, error) {
	m, err := x.manager()
	if err != nil {
		return nil, err
	}
	resp := &embeddv1.ListCollectionsResponse{}
	for _, name := range m.List() {
		if c, err := m.Get(name); err == nil {
			resp.Collections = append(resp.Collections, describe(name, c))
		}
	}
	return resp, nil
}

// embedTexts embeds texts for collection c. A collection created with a
// model uses that model, cut to the collection's dimension; otherwise the
// request's embed options pick the model and dimensions, and the result
// must have the collection's dimension.
func (x *indexService) embedTexts(ctx context.Context, name string, c *index.Collection, eo *embeddv1.EmbedOptions, texts []string) ([][]float32, error) {
	model, o := options(eo)
	dim := c.Dim()
	if sp := c.Spec(); sp.Model != "" {
		model, o.Dimensions = sp.Model, dim
	}
	res, err := x.s.embed(ctx, model, texts, o)
	if err != nil {
		return nil, err
	}
	if got := len(res.vectors[0]); got != dim {
		return nil, status.Errorf(codes.InvalidArgument, "collection %s has dimension %d but model %s gives %d: set embed.dimensions or create the collection with a model", name, dim, res.model, got)
	}
	return res.vectors, nil
}

// Upsert implements embeddv1.IndexServiceServer: records given as text are
// embedded first; the call returns once every record is durable.
func (x *indexService) Upsert(ctx context.Context, req *embeddv1.UpsertRequest) (*embeddv1.UpsertResponse, error) {
	c, err := x.collection(req.Collection)
	if err != nil {
		return nil, err
	}
	recs := make([]index.Record, len(req.Records))
	var texts []string
	var textIdx []int
	for i, r := range req.Records {
		recs[i] = index.Record{ID: r.Id, Vector: r.Vector, Metadata: r.Metadata, MetadataJSON: len(r.Metadata) > 0}
		switch {
		case len(r.Vector) > 0 && r.Text != "":
			return nil, status.Errorf(codes.InvalidArgument, "records[%d]: give a vector or a text, not both", i)
		case len(r.Vector) == 0 && r.Text == "":
			return nil, status.Errorf(codes.InvalidArgument, "records[%d]: has neither a vector nor a text", i)
		case r.Text != "":
			texts = append(texts, r.Text)
			textIdx = append(textIdx, i)
		}
	}
	if len(texts) > 0 {
		vecs, err := x.embedTexts(ctx, req.Collection, c, req.Embed, texts)
		if err != nil {
			return nil, err
		}
		for j, i := range textIdx {
			recs[i].Vector = vecs[j]
		}
	}
	if err := c.Upsert(ctx, recs); err != nil {
		return nil, indexStatus(err)
	}
	return &embeddv1.UpsertResponse{Upserted: uint64(len(recs))}, nil
}

// Delete implements embeddv1.IndexServiceServer.
func (x *indexService) Delete(ctx context.Context, req *embeddv1.DeleteRequest) (*embeddv1.DeleteResponse, error) {
	c, err := x.collection(req.Collection)
	if err != nil {
		return nil, err
	}
	n, err := c.Delete(ctx, req.Ids)
	if err != nil {
		return nil, indexStatus(err)
	}
	return &embeddv1.DeleteResponse{Deleted: uint64(n)}, nil
}

// Get implements embeddv1.IndexServiceServer.
func (x *indexService) Get(ctx context.Context, req *embeddv1.GetRequest) (*embeddv1.GetResponse, error) {
	c, err := x.collection(req.Collection)
	if err != nil {
		return nil, err
	}
	resp := &embeddv1.GetResponse{}
	for _, id := range req.Ids {
		r, ok, err := c.Get(id)
		if err != nil {
			return nil, indexStatus(err)
		}
		if !ok {
			resp.Missing = append(resp.Missing, id)
			continue
		}
		resp.Records = append(resp.Records, &embeddv1.Record{Id: r.ID, Vector: r.Vector, Metadata: r.Metadata})
	}
	return resp, nil
}

// Search implements embeddv1.IndexServiceServer: text queries are embedded
// with the collection's model, then every query is answered from one
// snapshot.
func (x *indexService) Search(ctx context.Context, req *embeddv1.SearchRequest) (*embeddv1.SearchResponse, error) {
	c, err := x.collection(req.Collection)
	if err != nil {
		return nil, err
	}
	if len(req.Queries) == 0 {
		return nil, status.Error(codes.InvalidArgument, "queries: the list is empty; send at least one query")
	}
	if len(req.Queries) > x.s.cfg.MaxTextsPerRequest {
		return nil, status.Errorf(codes.InvalidArgument, "queries: %d is over the limit of %d per request", len(req.Queries), x.s.cfg.MaxTextsPerRequest)
	}
	queries := make([][]float32, len(req.Queries))
	var texts []string
	var textIdx []int
	for i, q := range req.Queries {
		switch v := q.Query.(type) {
		case *embeddv1.Query_Vector:
			queries[i] = v.Vector.GetValues()
		case *embeddv1.Query_Text:
			texts = append(texts, v.Text)
			textIdx = append(textIdx, i)
		default:
			return nil, status.Errorf(codes.InvalidArgument, "queries[%d]: has neither a vector nor a text", i)
		}
	}
	if len(texts) > 0 {
		vecs, err := x.embedTexts(ctx, req.Collection, c, req.Embed, texts)
		if err != nil {
			return nil, err
		}
		for j, i := range textIdx {
			queries[i] = vecs[j]
		}
	}
	results, err := c.Search(ctx, queries, int(req.K), index.SearchOptions{Filter: req.Filter, Vectors: req.IncludeVectors})
	if err != nil {
		return nil, indexStatus(err)
	}
	resp := &embeddv1.SearchResponse{Results: make([]*embeddv1.SearchResult, len(results))}
	for i, hits := range results {
		sr := &embeddv1.SearchResult{Hits: make([]*embeddv1.Hit, len(hits))}
		for j, h := range hits {
			hit := &embeddv1.Hit{Id: h.ID, Score: h.Score}
			if req.IncludeMetadata {
				hit.Metadata = h.Metadata
			}
			if req.IncludeVectors {
				hit.Vector = h.Vector
			}
			sr.Hits[j] = hit
		}
		resp.Results[i] = sr
	}
	return resp, nil
}
