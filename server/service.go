package server

import (
	"context"
	"errors"
	"io"
	"strings"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/device"
	"github.com/embedd/embedd/models"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// embeddingService implements embeddv1.EmbeddingServiceServer over a Server.
type embeddingService struct {
	embeddv1.UnimplementedEmbeddingServiceServer
	s *Server
}

// options converts the wire options; an enum value this server does not
// know is INVALID_ARGUMENT (proto3 would pass it on as a number).
func options(o *embeddv1.EmbedOptions) (string, models.Options, error) {
	var mo models.Options
	if o == nil {
		return "", mo, nil
	}
	if o.Normalize != nil {
		mo.Normalize = models.NormalizeOff
		if *o.Normalize {
			mo.Normalize = models.NormalizeOn
		}
	}
	switch o.Truncation {
	case embeddv1.Truncation_TRUNCATION_UNSPECIFIED, embeddv1.Truncation_TRUNCATION_END:
	case embeddv1.Truncation_TRUNCATION_REJECT:
		mo.Truncate = models.Reject
	default:
		return "", mo, core.Errorf(core.InvalidArgument, "options.truncation", "%d is not a known truncation (TRUNCATION_END or TRUNCATION_REJECT)", o.Truncation)
	}
	mo.Dimensions = int(o.Dimensions)
	return o.Model, mo, nil
}

func toEmbeddings(vecs [][]float32) []*embeddv1.Embedding {
	out := make([]*embeddv1.Embedding, len(vecs))
	for i, v := range vecs {
		out[i] = &embeddv1.Embedding{Values: v}
	}
	return out
}

// Embed implements embeddv1.EmbeddingServiceServer.
func (e *embeddingService) Embed(ctx context.Context, req *embeddv1.EmbedRequest) (*embeddv1.EmbedResponse, error) {
	model, o, err := options(req.Options)
	if err != nil {
		return nil, grpcError(err)
	}
	c, err := e.s.ready()
	if err != nil {
		return nil, err
	}
	res, err := c.Embed(ctx, model, req.Texts, o)
	if err != nil {
		return nil, grpcError(err)
	}
	return &embeddv1.EmbedResponse{Embeddings: toEmbeddings(res.Vectors), Model: res.Model, Tokens: uint64(res.Tokens)}, nil
}

// EmbedStream implements embeddv1.EmbeddingServiceServer: up to
// StreamInFlight chunks are embedded at once and answered in order; a bad
// chunk is answered with its error and the stream goes on.
func (e *embeddingService) EmbedStream(stream embeddv1.EmbeddingService_EmbedStreamServer) error {
	c, err := e.s.ready()
	if err != nil {
		return err
	}
	ctx := stream.Context()
	g, ctx := errgroup.WithContext(ctx)
	pending := make(chan chan *embeddv1.EmbedStreamResponse, e.s.cfg.StreamInFlight)
	g.Go(func() error { // receiver: starts each chunk, in order
		defer close(pending)
		for {
			req, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			slot := make(chan *embeddv1.EmbedStreamResponse, 1)
			select {
			case pending <- slot:
			case <-ctx.Done():
				return ctx.Err()
			}
			g.Go(func() error {
				resp := &embeddv1.EmbedStreamResponse{Id: req.Id}
				model, o, err := options(req.Options)
				var res core.Embeddings
				if err == nil {
					res, err = c.Embed(ctx, model, req.Texts, o)
				}
				if err != nil {
					st := status.Convert(grpcError(err))
					resp.Error = &embeddv1.Error{Code: int32(st.Code()), Message: st.Message()}
				} else {
					resp.Embeddings, resp.Tokens = toEmbeddings(res.Vectors), uint64(res.Tokens)
				}
				slot <- resp
				return nil
			})
		}
	})
	g.Go(func() error { // sender: answers in order
		for slot := range pending {
			select {
			case resp := <-slot:
				if err := stream.Send(resp); err != nil {
					return err
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	return grpcError(g.Wait())
}

// Tokenize implements embeddv1.EmbeddingServiceServer.
func (e *embeddingService) Tokenize(ctx context.Context, req *embeddv1.TokenizeRequest) (*embeddv1.TokenizeResponse, error) {
	c, err := e.s.ready()
	if err != nil {
		return nil, err
	}
	ids, err := c.Tokenize(req.Model, req.Texts, req.Truncate)
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &embeddv1.TokenizeResponse{Tokens: make([]*embeddv1.TokenIds, len(ids))}
	for i, t := range ids {
		resp.Tokens[i] = &embeddv1.TokenIds{Ids: t}
	}
	return resp, nil
}

// ListModels implements embeddv1.EmbeddingServiceServer.
func (e *embeddingService) ListModels(ctx context.Context, _ *embeddv1.ListModelsRequest) (*embeddv1.ListModelsResponse, error) {
	c, err := e.s.ready()
	if err != nil {
		return nil, err
	}
	resp := &embeddv1.ListModelsResponse{}
	for _, m := range c.Models() {
		resp.Models = append(resp.Models, &embeddv1.Model{
			Id: m.ID, Dimensions: uint32(m.Dim), MaxLength: uint32(m.MaxLength), Pooling: string(m.Pooling),
			Normalize: m.Normalize, Device: joinDevices(m.Devices), Default: m.Default, Kind: m.Kind,
		})
	}
	return resp, nil
}

// joinDevices lists a model's replica devices, comma-separated.
func joinDevices(ds []device.Device) string {
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.String()
	}
	return strings.Join(names, ",")
}

// loaded returns the core, or the Unavailable error every surface answers
// while the models load.
func (s *Server) loaded() (*core.Core, error) {
	c := s.core.Load()
	if c == nil {
		return nil, core.Unavailablef("models are still loading; retry shortly")
	}
	return c, nil
}

// ready is loaded for the gRPC handlers: UNAVAILABLE while the models load.
func (s *Server) ready() (*core.Core, error) {
	c, err := s.loaded()
	return c, grpcError(err)
}
