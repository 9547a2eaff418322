package server

import (
	"context"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/models"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// embeddingService implements embeddv1.EmbeddingServiceServer over a Server.
type embeddingService struct {
	embeddv1.UnimplementedEmbeddingServiceServer
	s *Server
}

// options converts the wire options.
func options(o *embeddv1.EmbedOptions) (string, models.Options) {
	var mo models.Options
	if o == nil {
		return "", mo
	}
	if o.Normalize != nil {
		mo.Normalize = models.NormalizeOff
		if *o.Normalize {
			mo.Normalize = models.NormalizeOn
		}
	}
	if o.Truncation == embeddv1.Truncation_TRUNCATION_REJECT {
		mo.Truncate = models.Reject
	}
	mo.Dimensions = int(o.Dimensions)
	return o.Model, mo
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
	model, o := options(req.Options)
	res, err := e.s.embed(ctx, model, req.Texts, o)
	if err != nil {
		return nil, err
	}
	return &embeddv1.EmbedResponse{Embeddings: toEmbeddings(res.vectors), Model: res.model, Tokens: uint64(res.tokens)}, nil
}

// EmbedStream implements embeddv1.EmbeddingServiceServer: up to
// StreamInFlight chunks are embedded at once and answered in order; a bad
// chunk is answered with its error and the stream goes on.
func (e *embeddingService) EmbedStream(stream embeddv1.EmbeddingService_EmbedStreamServer) error {
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
				model, o := options(req.Options)
				resp := &embeddv1.EmbedStreamResponse{Id: req.Id}
				res, err := e.s.embed(ctx, model, req.Texts, o)
				if err != nil {
					st := status.Convert(err)
					resp.Error = &embeddv1.Error{Code: int32(st.Code()), Message: st.Message()}
				} else {
					resp.Embeddings, resp.Tokens = toEmbeddings(res.vectors), uint64(res.tokens)
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
	if err := g.Wait(); err != nil {
		return toStatus(err)
	}
	return nil
}

// Tokenize implements embeddv1.EmbeddingServiceServer.
func (e *embeddingService) Tokenize(ctx context.Context, req *embeddv1.TokenizeRequest) (*embeddv1.TokenizeResponse, error) {
	p, err := e.s.pipeline(req.Model)
	if err != nil {
		return nil, err
	}
	if err := e.s.checkTexts(req.Texts); err != nil {
		return nil, err
	}
	maxLen := 0
	if req.Truncate {
		maxLen = p.model.Info().MaxLength
	}
	resp := &embeddv1.TokenizeResponse{Tokens: make([]*embeddv1.TokenIds, len(req.Texts))}
	for i, t := range req.Texts {
		if !utf8.ValidString(t) {
			return nil, status.Errorf(codes.InvalidArgument, "texts[%d]: is not valid UTF-8", i)
		}
		ids, _ := p.model.Tokenizer().Encode(nil, t, maxLen)
		resp.Tokens[i] = &embeddv1.TokenIds{Ids: ids}
	}
	return resp, nil
}

// ListModels implements embeddv1.EmbeddingServiceServer.
func (e *embeddingService) ListModels(ctx context.Context, _ *embeddv1.ListModelsRequest) (*embeddv1.ListModelsResponse, error) {
	st := e.s.state.Load()
	if st == nil {
		return nil, status.Error(codes.Unavailable, "models are still loading; retry shortly")
	}
	resp := &embeddv1.ListModelsResponse{}
	for _, m := range st.reg.Models() {
		resp.Models = append(resp.Models, &embeddv1.Model{
			Id: m.ID, Dimensions: uint32(m.Dim), MaxLength: uint32(m.MaxLength), Pooling: string(m.Pooling),
			Normalize: m.Normalize, Device: joinDevices(m.Devices), Default: m.ID == st.reg.DefaultID(),
		})
	}
	return resp, nil
}

// joinDevices lists a model's replica devices, comma-separated.
func joinDevices(ds []models.Device) string {
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.String()
	}
	return strings.Join(names, ",")
}
