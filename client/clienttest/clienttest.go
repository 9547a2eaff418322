// Package clienttest runs a fake embedd server for tests of the client and
// of embedctl: the embedding, index and health services on loopback TCP,
// answering deterministically with no model behind them.
//
// The fake model ("fake-model") turns a text into Vector(text, dims); it
// refuses texts that start with "invalid:" with INVALID_ARGUMENT, as a real
// server refuses bad texts. Tests can make the next calls fail with a given
// code and retry hint (FailNext), slow calls down (SetDelay), require an
// API key (Config.APIKey), and read what the server saw (Calls, LastAuth).
// DNS stands in for the DNS of a headless Service in front of several.
package clienttest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
	"github.com/embedd/embedd/vec"
)

// ModelID is the fake server's only model, its default.
const ModelID = "fake-model"

// MaxLength is the fake model's maximum number of tokens.
const MaxLength = 16

// Config sets up a fake server. The zero value serves 8-wide vectors to
// anyone.
type Config struct {
	// Dims is the width of the fake model's vectors; default 8.
	Dims int
	// APIKey, when set, is required as "authorization: Bearer KEY" on every
	// call but health checks; other calls get UNAUTHENTICATED.
	APIKey string
	// TLS, when set, serves over TLS with this configuration.
	TLS *tls.Config
}

// Failure is an error the fake server answers instead of running a call.
type Failure struct {
	// Code is the status code; default UNAVAILABLE.
	Code codes.Code
	// RetryInfo, when positive, attaches a google.rpc.RetryInfo detail
	// with this delay.
	RetryInfo time.Duration
	// RetryAfter, when positive, sets the retry-after-ms trailer.
	RetryAfter time.Duration
}

// Server is a running fake server.
type Server struct {
	cfg    Config
	addr   string
	health *health.Server

	mu       sync.Mutex // guards the fields below
	failures []Failure  // answered, in order, by the next unary calls
	delay    time.Duration
	calls    map[string]int // attempts by method name ("Embed")
	lastAuth string
	colls    map[string]*collection
}

// Start runs a fake server on 127.0.0.1 until the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Dims == 0 {
		cfg.Dims = 8
	}
	s := &Server{cfg: cfg, health: health.NewServer(), calls: make(map[string]int), colls: make(map[string]*collection)}
	s.health.SetServingStatus(embeddv1.EmbeddingService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("clienttest: %v", err)
	}
	s.addr = lis.Addr().String()
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(s.unary), grpc.ChainStreamInterceptor(s.stream)}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	gs := grpc.NewServer(opts...)
	embeddv1.RegisterEmbeddingServiceServer(gs, embeddingService{s: s})
	embeddv1.RegisterIndexServiceServer(gs, indexService{s: s})
	healthpb.RegisterHealthServer(gs, s.health)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis) // returns when Stop closes the listener
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return s
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// Health is the server's health service, for setting statuses.
func (s *Server) Health() *health.Server { return s.health }

// FailNext makes the next n unary calls (health checks excepted) fail
// with f.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, f)
	}
}

// SetDelay makes unary calls wait d (or until their deadline) before
// answering.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Calls returns how many times method ("Embed", "Search", ...) was called,
// failed attempts included.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// LastAuth returns the authorization metadata of the latest call.
func (s *Server) LastAuth() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAuth
}

// admit counts a call and checks its API key.
func (s *Server) admit(ctx context.Context, fullMethod string) error {
	name := fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
	var auth string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			auth = v[0]
		}
	}
	s.mu.Lock()
	s.calls[name]++
	s.lastAuth = auth
	s.mu.Unlock()
	if s.cfg.APIKey != "" && !strings.HasPrefix(fullMethod, "/grpc.health.v1.") && auth != "Bearer "+s.cfg.APIKey {
		return status.Error(codes.Unauthenticated, "missing or wrong API key: send authorization: Bearer KEY")
	}
	return nil
}

func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.admit(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	if strings.HasPrefix(info.FullMethod, "/grpc.health.v1.") {
		return h(ctx, req)
	}
	s.mu.Lock()
	delay := s.delay
	var f *Failure
	if len(s.failures) > 0 {
		f = &s.failures[0]
		s.failures = s.failures[1:]
	}
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if f != nil {
		return nil, f.err(ctx)
	}
	return h(ctx, req)
}

// err builds the failure's status and sets its trailer.
func (f *Failure) err(ctx context.Context) error {
	code := f.Code
	if code == codes.OK {
		code = codes.Unavailable
	}
	st := status.New(code, "clienttest: injected failure")
	if f.RetryInfo > 0 {
		if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(f.RetryInfo)}); err == nil {
			st = d
		}
	}
	if f.RetryAfter > 0 {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("retry-after-ms", strconv.FormatInt(f.RetryAfter.Milliseconds(), 10)))
	}
	return st.Err()
}

func (s *Server) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.admit(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// Vector is the fake model's vector of text: deterministic, different for
// different texts, with components in [0, 1).
func Vector(text string, dims int) []float32 {
	h := uint64(14695981039346656037) // FNV-1a, then a xorshift per component
	for i := 0; i < len(text); i++ {
		h = (h ^ uint64(text[i])) * 1099511628211
	}
	v := make([]float32, dims)
	for i := range v {
		h ^= h << 13
		h ^= h >> 7
		h ^= h << 17
		v[i] = float32(h>>40) / (1 << 24)
	}
	return v
}

// Tokens are the fake model's token ids of text: 101, one id per byte,
// 102; with truncate, at most MaxLength of them.
func Tokens(text string, truncate bool) []int32 {
	ids := []int32{101}
	for i := 0; i < len(text); i++ {
		ids = append(ids, 1000+int32(text[i]))
	}
	if truncate && len(ids) >= MaxLength {
		ids = ids[:MaxLength-1]
	}
	return append(ids, 102)
}

// embeddingService is the fake EmbeddingService.
type embeddingService struct {
	embeddv1.UnimplementedEmbeddingServiceServer
	s *Server
}

// embed is Embed's work, shared with EmbedStream.
func (e embeddingService) embed(texts []string, o *embeddv1.EmbedOptions) ([]*embeddv1.Embedding, uint64, error) {
	if len(texts) == 0 {
		return nil, 0, status.Error(codes.InvalidArgument, "texts: the list is empty; send at least one text")
	}
	if m := o.GetModel(); m != "" && m != ModelID {
		return nil, 0, status.Errorf(codes.NotFound, "model %q is not loaded; loaded: %s", m, ModelID)
	}
	dims := e.s.cfg.Dims
	if d := int(o.GetDimensions()); d > dims {
		return nil, 0, status.Errorf(codes.InvalidArgument, "dimensions: %d is over the model's %d", d, dims)
	} else if d > 0 {
		dims = d
	}
	var tokens uint64
	out := make([]*embeddv1.Embedding, len(texts))
	for i, t := range texts {
		if strings.HasPrefix(t, "invalid:") {
			return nil, 0, status.Errorf(codes.InvalidArgument, "texts[%d]: the fake model refuses texts starting with \"invalid:\"", i)
		}
		ids := Tokens(t, o.GetTruncation() != embeddv1.Truncation_TRUNCATION_REJECT)
		if len(ids) > MaxLength {
			return nil, 0, status.Errorf(codes.InvalidArgument, "texts[%d]: %d tokens is over the model's maximum of %d", i, len(ids), MaxLength)
		}
		tokens += uint64(len(ids))
		v := Vector(t, dims)
		if o.GetNormalize() { // the fake model does not normalise by default
			vec.Normalize(v)
		}
		out[i] = &embeddv1.Embedding{Values: v}
	}
	return out, tokens, nil
}

// Embed implements EmbeddingServiceServer.
func (e embeddingService) Embed(_ context.Context, req *embeddv1.EmbedRequest) (*embeddv1.EmbedResponse, error) {
	es, tokens, err := e.embed(req.GetTexts(), req.GetOptions())
	if err != nil {
		return nil, err
	}
	return &embeddv1.EmbedResponse{Embeddings: es, Model: ModelID, Tokens: tokens}, nil
}

// EmbedStream implements EmbeddingServiceServer: each message is answered
// in order, a bad one with its error.
func (e embeddingService) EmbedStream(stream grpc.BidiStreamingServer[embeddv1.EmbedStreamRequest, embeddv1.EmbedStreamResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &embeddv1.EmbedStreamResponse{Id: req.GetId()}
		es, tokens, err := e.embed(req.GetTexts(), req.GetOptions())
		if err != nil {
			st := status.Convert(err)
			resp.Error = &embeddv1.Error{Code: int32(st.Code()), Message: st.Message()}
		} else {
			resp.Embeddings, resp.Tokens = es, tokens
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// Tokenize implements EmbeddingServiceServer.
func (e embeddingService) Tokenize(_ context.Context, req *embeddv1.TokenizeRequest) (*embeddv1.TokenizeResponse, error) {
	if m := req.GetModel(); m != "" && m != ModelID {
		return nil, status.Errorf(codes.NotFound, "model %q is not loaded; loaded: %s", m, ModelID)
	}
	resp := &embeddv1.TokenizeResponse{}
	for _, t := range req.GetTexts() {
		resp.Tokens = append(resp.Tokens, &embeddv1.TokenIds{Ids: Tokens(t, req.GetTruncate())})
	}
	return resp, nil
}

// ListModels implements EmbeddingServiceServer.
func (e embeddingService) ListModels(context.Context, *embeddv1.ListModelsRequest) (*embeddv1.ListModelsResponse, error) {
	return &embeddv1.ListModelsResponse{Models: []*embeddv1.Model{{
		Id: ModelID, Dimensions: uint32(e.s.cfg.Dims), MaxLength: MaxLength,
		Pooling: "mean", Device: "cpu", Default: true, Kind: "onnx",
	}}}, nil
}

// collection is a fake collection: records by id.
type collection struct {
	info    *embeddv1.Collection
	records map[string]*embeddv1.Record
}

// indexService is the fake IndexService: exact search over maps.
type indexService struct {
	embeddv1.UnimplementedIndexServiceServer
	s *Server
}

func (x indexService) coll(name string) (*collection, error) {
	c, ok := x.s.colls[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "collection %q does not exist", name)
	}
	return c, nil
}

// CreateCollection implements IndexServiceServer.
func (x indexService) CreateCollection(_ context.Context, req *embeddv1.CreateCollectionRequest) (*embeddv1.CreateCollectionResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	name, dim := req.GetName(), req.GetDimension()
	if name == "" || len(name) > 64 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
		return nil, status.Errorf(codes.InvalidArgument, "name: %q is not [a-z0-9_-]{1,64}", name)
	}
	if _, ok := x.s.colls[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "collection %q already exists", name)
	}
	if req.GetModel() != "" {
		if req.GetModel() != ModelID {
			return nil, status.Errorf(codes.NotFound, "model %q is not loaded", req.GetModel())
		}
		dim = uint32(x.s.cfg.Dims)
	}
	if dim == 0 {
		return nil, status.Error(codes.InvalidArgument, "dimension: 0 without a model; give one or the other")
	}
	info := &embeddv1.Collection{Name: name, Dimension: dim, Metric: req.GetMetric(), Model: req.GetModel()}
	if info.Metric == embeddv1.Metric_METRIC_UNSPECIFIED {
		info.Metric = embeddv1.Metric_METRIC_COSINE
	}
	x.s.colls[name] = &collection{info: info, records: make(map[string]*embeddv1.Record)}
	return &embeddv1.CreateCollectionResponse{Collection: info}, nil
}

// DropCollection implements IndexServiceServer.
func (x indexService) DropCollection(_ context.Context, req *embeddv1.DropCollectionRequest) (*embeddv1.DropCollectionResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if _, err := x.coll(req.GetName()); err != nil {
		return nil, err
	}
	delete(x.s.colls, req.GetName())
	return &embeddv1.DropCollectionResponse{}, nil
}

// ListCollections implements IndexServiceServer.
func (x indexService) ListCollections(context.Context, *embeddv1.ListCollectionsRequest) (*embeddv1.ListCollectionsResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	resp := &embeddv1.ListCollectionsResponse{}
	for _, name := range slices.Sorted(maps.Keys(x.s.colls)) {
		c := x.s.colls[name]
		resp.Collections = append(resp.Collections, &embeddv1.Collection{
			Name: c.info.GetName(), Dimension: c.info.GetDimension(), Metric: c.info.GetMetric(),
			Count: uint64(len(c.records)), Model: c.info.GetModel(),
		})
	}
	return resp, nil
}

// Upsert implements IndexServiceServer.
func (x indexService) Upsert(_ context.Context, req *embeddv1.UpsertRequest) (*embeddv1.UpsertResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	c, err := x.coll(req.GetCollection())
	if err != nil {
		return nil, err
	}
	dim := int(c.info.GetDimension())
	recs := make([]*embeddv1.Record, len(req.GetRecords()))
	for i, r := range req.GetRecords() {
		if r.GetId() == "" {
			return nil, status.Errorf(codes.InvalidArgument, "records[%d].id: empty", i)
		}
		v := r.GetVector()
		switch {
		case len(v) == 0 && r.GetText() != "":
			v = Vector(r.GetText(), dim)
		case len(v) != dim:
			return nil, status.Errorf(codes.InvalidArgument, "records[%d].vector: %d components, the collection has %d", i, len(v), dim)
		}
		if m := r.GetMetadata(); len(m) > 0 {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(m, &obj); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "records[%d].metadata: not a JSON object: %v", i, err)
			}
		}
		recs[i] = &embeddv1.Record{Id: r.GetId(), Vector: v, Metadata: r.GetMetadata(), Text: r.GetText()}
	}
	for _, r := range recs {
		c.records[r.GetId()] = r
	}
	return &embeddv1.UpsertResponse{Upserted: uint64(len(recs))}, nil
}

// Delete implements IndexServiceServer.
func (x indexService) Delete(_ context.Context, req *embeddv1.DeleteRequest) (*embeddv1.DeleteResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	c, err := x.coll(req.GetCollection())
	if err != nil {
		return nil, err
	}
	var n uint64
	for _, id := range req.GetIds() {
		if _, ok := c.records[id]; ok {
			delete(c.records, id)
			n++
		}
	}
	return &embeddv1.DeleteResponse{Deleted: n}, nil
}

// Get implements IndexServiceServer.
func (x indexService) Get(_ context.Context, req *embeddv1.GetRequest) (*embeddv1.GetResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	c, err := x.coll(req.GetCollection())
	if err != nil {
		return nil, err
	}
	resp := &embeddv1.GetResponse{}
	for _, id := range req.GetIds() {
		if r, ok := c.records[id]; ok {
			resp.Records = append(resp.Records, r)
		} else {
			resp.Missing = append(resp.Missing, id)
		}
	}
	return resp, nil
}

// Search implements IndexServiceServer.
func (x indexService) Search(_ context.Context, req *embeddv1.SearchRequest) (*embeddv1.SearchResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	c, err := x.coll(req.GetCollection())
	if err != nil {
		return nil, err
	}
	k := int(req.GetK())
	if k < 1 || k > 10000 {
		return nil, status.Errorf(codes.InvalidArgument, "k: %d is not in [1, 10000]", k)
	}
	dim := int(c.info.GetDimension())
	metric := c.info.GetMetric()
	resp := &embeddv1.SearchResponse{}
	for qi, q := range req.GetQueries() {
		var qv []float32
		switch {
		case q.GetVector() != nil:
			qv = q.GetVector().GetValues()
		case q.GetText() != "":
			qv = Vector(q.GetText(), dim)
		}
		if len(qv) != dim {
			return nil, status.Errorf(codes.InvalidArgument, "queries[%d]: %d components, the collection has %d", qi, len(qv), dim)
		}
		var hits []*embeddv1.Hit
		for _, r := range c.records {
			if !matches(r.GetMetadata(), req.GetFilter()) {
				continue
			}
			h := &embeddv1.Hit{Id: r.GetId(), Score: score(metric, qv, r.GetVector())}
			if req.GetIncludeMetadata() {
				h.Metadata = r.GetMetadata()
			}
			if req.GetIncludeVectors() {
				h.Vector = r.GetVector()
			}
			hits = append(hits, h)
		}
		slices.SortFunc(hits, func(a, b *embeddv1.Hit) int {
			sa, sb := a.GetScore(), b.GetScore()
			if metric != embeddv1.Metric_METRIC_L2 {
				sa, sb = -sa, -sb
			}
			switch {
			case sa < sb:
				return -1
			case sa > sb:
				return 1
			}
			return strings.Compare(a.GetId(), b.GetId())
		})
		resp.Results = append(resp.Results, &embeddv1.SearchResult{Hits: hits[:min(k, len(hits))]})
	}
	return resp, nil
}

func score(m embeddv1.Metric, a, b []float32) float32 {
	var dot, na, nb, l2 float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
		l2 += (x - y) * (x - y)
	}
	switch m {
	case embeddv1.Metric_METRIC_DOT:
		return float32(dot)
	case embeddv1.Metric_METRIC_L2:
		return float32(l2)
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return float32(dot / math.Sqrt(na*nb))
}

// matches reports whether metadata has every key of filter with the value
// (strings compared unquoted, other JSON values as written).
func matches(metadata []byte, filter map[string]string) bool {
	if len(filter) == 0 {
		return true
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(metadata, &obj) != nil {
		return false
	}
	for k, want := range filter {
		raw, ok := obj[k]
		if !ok {
			return false
		}
		got := string(raw)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			got = s
		}
		if got != want {
			return false
		}
	}
	return true
}
