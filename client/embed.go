package client

import (
	"context"
	"fmt"
	"math"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// Normalization says whether the server L2-normalises vectors.
type Normalization int

// Normalization choices; the zero value follows the model.
const (
	NormalizeDefault Normalization = iota // as the model is configured
	NormalizeOn                           // always
	NormalizeOff                          // never
)

// EmbedOptions are the settings of an embedding request. The zero value
// asks for the server's default model with its defaults.
type EmbedOptions struct {
	// Model is a model id from ListModels; empty means the server's default.
	Model string
	// Normalize overrides the model's L2 normalisation.
	Normalize Normalization
	// Dimensions keeps the first Dimensions components (Matryoshka models);
	// 0 keeps all.
	Dimensions int
	// RejectOverlong refuses texts over the model's maximum length with
	// INVALID_ARGUMENT instead of truncating them.
	RejectOverlong bool
}

// proto converts o, checking the fields a message cannot carry.
func (o EmbedOptions) proto() (*embeddv1.EmbedOptions, error) {
	p := &embeddv1.EmbedOptions{Model: o.Model}
	switch o.Normalize {
	case NormalizeDefault:
	case NormalizeOn:
		p.Normalize = proto.Bool(true)
	case NormalizeOff:
		p.Normalize = proto.Bool(false)
	default:
		return nil, fmt.Errorf("embedd/client: EmbedOptions.Normalize: %d is not NormalizeDefault, NormalizeOn or NormalizeOff", o.Normalize)
	}
	if o.Dimensions < 0 || o.Dimensions > math.MaxUint32 {
		return nil, fmt.Errorf("embedd/client: EmbedOptions.Dimensions: %d is not in [0, %d]", o.Dimensions, uint32(math.MaxUint32))
	}
	p.Dimensions = uint32(o.Dimensions)
	if o.RejectOverlong {
		p.Truncation = embeddv1.Truncation_TRUNCATION_REJECT
	}
	return p, nil
}

// Embeddings is the full answer to an embedding request.
type Embeddings struct {
	// Vectors holds one vector per text, in order.
	Vectors [][]float32
	// Model is the id of the model that ran.
	Model string
	// Tokens counts the tokens the model read, special tokens included.
	Tokens uint64
}

// Embed returns one vector per text, in order.
func (c *Client) Embed(ctx context.Context, texts []string, o EmbedOptions) ([][]float32, error) {
	e, err := c.EmbedInfo(ctx, texts, o)
	return e.Vectors, err
}

// EmbedInfo is Embed that also returns the model that ran and the tokens
// it read.
func (c *Client) EmbedInfo(ctx context.Context, texts []string, o EmbedOptions) (Embeddings, error) {
	opts, err := o.proto()
	if err != nil {
		return Embeddings{}, err
	}
	resp, err := c.emb.Embed(ctx, &embeddv1.EmbedRequest{Texts: texts, Options: opts})
	if err != nil {
		return Embeddings{}, errorf("Embed", err)
	}
	vecs, err := vectors(resp.GetEmbeddings(), len(texts))
	if err != nil {
		return Embeddings{}, errorf("Embed", err)
	}
	return Embeddings{Vectors: vecs, Model: resp.GetModel(), Tokens: resp.GetTokens()}, nil
}

// vectors unpacks embeddings, which must number n.
func vectors(es []*embeddv1.Embedding, n int) ([][]float32, error) {
	if len(es) != n {
		return nil, fmt.Errorf("the server returned %d embeddings for %d texts", len(es), n)
	}
	out := make([][]float32, n)
	for i, e := range es {
		out[i] = e.GetValues()
	}
	return out, nil
}

// TokenizeOptions are the settings of a Tokenize request.
type TokenizeOptions struct {
	// Model is a model id; empty means the server's default.
	Model string
	// Truncate cuts each text to the model's maximum length.
	Truncate bool
}

// Tokenize returns the token ids the model would read for each text, in
// order, with the model's special tokens.
func (c *Client) Tokenize(ctx context.Context, texts []string, o TokenizeOptions) ([][]int32, error) {
	resp, err := c.emb.Tokenize(ctx, &embeddv1.TokenizeRequest{Texts: texts, Model: o.Model, Truncate: o.Truncate})
	if err != nil {
		return nil, errorf("Tokenize", err)
	}
	if len(resp.GetTokens()) != len(texts) {
		return nil, errorf("Tokenize", fmt.Errorf("the server returned %d token lists for %d texts", len(resp.GetTokens()), len(texts)))
	}
	ids := make([][]int32, len(texts))
	for i, t := range resp.GetTokens() {
		ids[i] = t.GetIds()
	}
	return ids, nil
}

// ListModels describes the server's models.
func (c *Client) ListModels(ctx context.Context) ([]*embeddv1.Model, error) {
	resp, err := c.emb.ListModels(ctx, &embeddv1.ListModelsRequest{})
	if err != nil {
		return nil, errorf("ListModels", err)
	}
	return resp.GetModels(), nil
}

// Health asks the standard gRPC health service about service ("" for the
// server as a whole). It is not retried: a health check wants the answer
// of now.
func (c *Client) Health(ctx context.Context, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	resp, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{Service: service}, noRetry{})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, errorf("Health", err)
	}
	return resp.GetStatus(), nil
}
