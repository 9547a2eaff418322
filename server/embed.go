package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/server/batch"
	"github.com/embedd/embedd/server/cache"
)

// pipeline is one model with its batcher.
type pipeline struct {
	model   *models.Model
	batcher *batch.Batcher
}

// embedResult is what the gRPC and HTTP surfaces turn into responses.
type embedResult struct {
	model   string
	vectors [][]float32
	tokens  int
}

// embed is the one embedding path behind every surface: it validates the
// request against the limits, tokenizes, serves what it can from the cache,
// sends the rest through the model's batcher, and applies the options.
// Errors are gRPC status errors. With tracing on, it is the "embed" span,
// with "tokenize", "cache", "queue_wait" and "inference" under it.
func (s *Server) embed(ctx context.Context, modelID string, texts []string, o models.Options) (_ embedResult, err error) {
	ctx, span := s.startSpan(ctx, "embed")
	defer func() { endSpan(span, err) }()
	p, err := s.pipeline(modelID)
	if err != nil {
		return embedResult{}, err
	}
	id := p.model.Info().ID
	if span.IsRecording() {
		span.SetAttributes(attrModel.String(id), attrTexts.Int(len(texts)))
	}
	if err := s.checkTexts(texts); err != nil {
		return embedResult{}, err
	}
	if err := p.model.CheckOptions(o); err != nil {
		return embedResult{}, toStatus(err)
	}
	arena, ends, err := s.tokenize(ctx, p, texts, o.Truncate)
	if err != nil {
		return embedResult{}, err
	}
	out := make([][]float32, len(texts))
	misses := s.cached(ctx, id, texts, out)
	if len(misses) > 0 {
		seqs := make([][]int32, len(misses))
		for j, i := range misses {
			start := 0
			if i > 0 {
				start = ends[i-1]
			}
			seqs[j] = arena[start:ends[i]:ends[i]]
		}
		vecs, err := s.submit(ctx, p, seqs)
		if err != nil {
			return embedResult{}, s.batchStatus(p, err)
		}
		for j, i := range misses {
			s.cache.Put(cache.Key(id, 0, 0, texts[i]), vecs[j])
			out[i] = vecs[j]
		}
	}
	for i, v := range out {
		out[i] = p.model.Finish(v, o)
	}
	return embedResult{model: id, vectors: out, tokens: len(arena)}, nil
}

// tokenize tokenizes texts into one arena, ends[i] being where text i's ids
// end (the "tokenize" span).
func (s *Server) tokenize(ctx context.Context, p *pipeline, texts []string, t models.Truncation) (arena []int32, ends []int, err error) {
	_, span := s.startSpan(ctx, "tokenize")
	defer func() { endSpan(span, err) }()
	ends = make([]int, len(texts))
	for i, text := range texts {
		if arena, err = p.model.Tokenize(arena, i, text, t); err != nil {
			return nil, nil, toStatus(err)
		}
		ends[i] = len(arena)
	}
	if span.IsRecording() {
		span.SetAttributes(attrTexts.Int(len(texts)), attrTokens.Int(len(arena)))
	}
	return arena, ends, nil
}

// cached fills out[i] with the cached vector of texts[i] where there is
// one, and returns the indexes of the others (the "cache" span).
func (s *Server) cached(ctx context.Context, model string, texts []string, out [][]float32) (misses []int) {
	_, span := s.startSpan(ctx, "cache")
	defer span.End()
	for i, t := range texts {
		if v, ok := s.cache.Get(cache.Key(model, 0, 0, t)); ok {
			out[i] = v
		} else {
			misses = append(misses, i)
		}
	}
	if span.IsRecording() {
		span.SetAttributes(attrCacheHits.Int(len(texts)-len(misses)), attrCacheMisses.Int(len(misses)))
	}
	return misses
}

// pipeline finds the model's pipeline; NOT_FOUND names the loaded ids,
// UNAVAILABLE while models are loading or after shutdown began.
func (s *Server) pipeline(id string) (*pipeline, error) {
	st := s.state.Load()
	if st == nil {
		return nil, status.Error(codes.Unavailable, "models are still loading; retry shortly")
	}
	m, err := st.reg.Get(id)
	if err != nil {
		return nil, toStatus(err)
	}
	return st.pipes[m.Info().ID], nil
}

// checkTexts applies the per-request limits.
func (s *Server) checkTexts(texts []string) error {
	if len(texts) == 0 {
		return status.Error(codes.InvalidArgument, "texts: the list is empty; send at least one text")
	}
	if len(texts) > s.cfg.MaxTextsPerRequest {
		return status.Errorf(codes.InvalidArgument, "texts: %d texts is over the limit of %d per request; split the request or use EmbedStream", len(texts), s.cfg.MaxTextsPerRequest)
	}
	for i, t := range texts {
		if len(t) > s.cfg.MaxTextBytes {
			return status.Errorf(codes.InvalidArgument, "texts[%d]: %d bytes is over the limit of %d bytes per text", i, len(t), s.cfg.MaxTextBytes)
		}
	}
	return nil
}

// batchStatus maps the batcher's errors to gRPC codes; a full queue carries
// a retry hint.
func (s *Server) batchStatus(p *pipeline, err error) error {
	switch {
	case errors.Is(err, batch.ErrQueueFull):
		// Hint: the time to work through the queue at the recent pace,
		// at least 50ms.
		wait := max(50*time.Millisecond, time.Duration(p.batcher.QueueDepth())*time.Millisecond)
		st := status.New(codes.ResourceExhausted, fmt.Sprintf("model %s is overloaded (%v); retry after %v", p.model.Info().ID, err, wait))
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, batch.ErrClosed):
		return status.Error(codes.Unavailable, "the server is shutting down")
	}
	return toStatus(err)
}

// toStatus maps embedd errors to gRPC status errors.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if ie, ok := errors.AsType[*models.InputError](err); ok {
		return status.Errorf(codes.InvalidArgument, "texts[%d]: %s", ie.Index, ie.Reason)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded before the texts were embedded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, models.ErrUnknownModel):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, models.ErrInvalidInput):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, models.ErrClosed):
		return status.Error(codes.Unavailable, "the server is shutting down")
	}
	return status.Error(codes.Internal, err.Error())
}
