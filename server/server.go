// Package server is embedd's front door: the gRPC embedding service, the
// OpenAI-compatible HTTP endpoint, health, metrics, limits, auth and
// shutdown, over the models of a registry and one dynamic batcher per model
// (package server/batch).
//
// Data flow of one request: interceptors (request id, log, metrics, panic
// recovery, auth, rate limit) → validation against the limits → tokenizer
// (on the handler's goroutine: ~11 M tokens/s per core, and the batcher
// needs token counts for its budget) → embedding cache → the model's
// batcher queue (bounded; full → RESOURCE_EXHAUSTED with a retry hint) →
// batch former → ONNX Runtime on the model's worker goroutines → pooling →
// options (dimensions, normalisation) → response.
//
// Tracing (Config.Tracing, or WithTracerProvider) adds OpenTelemetry spans
// along that path: one server span per RPC and per /v1/embeddings request,
// joining the caller's trace (W3C traceparent), and under it "embed" with
// "tokenize", "cache", "queue_wait" and "inference" (see tracing.go).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/index/gpusearch"
	"github.com/embedd/embedd/models"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
	"github.com/embedd/embedd/server/batch"
	"github.com/embedd/embedd/server/cache"
	"github.com/embedd/embedd/server/ratelimit"
)

// Server serves embedd over gRPC and HTTP. Create it with New, run it with
// Serve.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	cache   *cache.Cache
	limiter *ratelimit.Limiter // nil when rate limiting is off
	health  *health.Server
	grpc    *grpc.Server
	http    *http.Server
	given   *models.Registry // set by WithRegistry: used, never closed

	// Tracing: tracer is nil when tracing is off. Serve sets it, and ownTP
	// when it builds the provider from the config, before serving; ownTP
	// is shut down at the end of shutdown. givenTP is WithTracerProvider's:
	// used, never shut down.
	givenTP trace.TracerProvider
	ownTP   *sdktrace.TracerProvider
	tracer  trace.Tracer

	beforeLoad func() // test hook, run just before the models load

	state    atomic.Pointer[state] // nil until models are loaded
	draining atomic.Bool           // set when shutdown begins
	serveMu  sync.Mutex            // guards served
	served   bool
}

// state is what exists once the models and collections are loaded.
type state struct {
	reg         *models.Registry
	pipes       map[string]*pipeline // by model id
	collections *index.Manager
	// search names the search backend that runs ("cpu", "cuda:0").
	search string
	// closeBackend closes the search backend (after the collections); nil
	// before it is chosen.
	closeBackend func() error
}

// Option changes how New builds a Server.
type Option func(*Server)

// WithRegistry serves the models of an open registry instead of loading the
// config's; the caller keeps ownership and closes it after Serve returns.
func WithRegistry(r *models.Registry) Option { return func(s *Server) { s.given = r } }

// WithLogger sets the logger; default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithTracerProvider traces with tp instead of a provider built from the
// config's tracing (which is then not used), even when that is off; the
// caller keeps ownership and shuts tp down after Serve returns. Default:
// none, so tracing follows Config.Tracing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Server) { s.givenTP = tp }
}

// New checks cfg (after applying its defaults) and builds the servers
// without listening yet.
func New(cfg Config, opts ...Option) (*Server, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("embedd/server: config: %w", err)
	}
	s := &Server{cfg: cfg, log: slog.Default(), metrics: newMetrics(), cache: cache.New(cfg.CacheBytes)}
	for _, o := range opts {
		o(s)
	}
	if cfg.RateLimit > 0 {
		s.limiter = ratelimit.New(cfg.RateLimit, cfg.RateBurst)
	}
	s.metrics.registerCache(s.cache)

	gopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second,
			MaxConnectionAge: time.Duration(cfg.MaxConnectionAge), MaxConnectionAgeGrace: time.Duration(cfg.MaxConnectionAgeGrace)}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(s.observeUnary, recoverUnary(s.log), s.authUnary, s.rateUnary),
		grpc.ChainStreamInterceptor(s.observeStream, recoverStream(s.log), s.authStream, s.rateStream),
	}
	if cfg.TLSCert != "" {
		creds, err := credentials.NewServerTLSFromFile(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("embedd/server: tls_cert/tls_key: %w", err)
		}
		gopts = append(gopts, grpc.Creds(creds))
	}
	s.grpc = grpc.NewServer(gopts...)
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(embeddv1.EmbeddingService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.health.SetServingStatus(embeddv1.IndexService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	embeddv1.RegisterEmbeddingServiceServer(s.grpc, &embeddingService{s: s})
	embeddv1.RegisterIndexServiceServer(s.grpc, &indexService{s: s})
	reflection.Register(s.grpc)
	s.http = &http.Server{
		Handler:           s.traceHTTP(s.httpHandler()),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Serve serves gRPC on grpcLis and, when httpLis is not nil, HTTP on it,
// loads the models (reporting NOT_SERVING until they are), and runs until
// ctx ends; then it shuts down gracefully: health goes NOT_SERVING, new
// calls are refused, running and queued work finishes within
// ShutdownGrace, the batchers and (unless given) the registry are closed,
// and the spans still buffered (when tracing is on) are flushed. It closes
// the listeners. A Server serves once.
func (s *Server) Serve(ctx context.Context, grpcLis, httpLis net.Listener) error {
	s.serveMu.Lock()
	if s.served {
		s.serveMu.Unlock()
		return errors.New("embedd/server: Serve called twice")
	}
	s.served = true
	s.serveMu.Unlock()

	// Before anything serves, so that the handlers see the tracer.
	if err := s.startTracing(); err != nil {
		grpcLis.Close()
		if httpLis != nil {
			httpLis.Close()
		}
		return err
	}
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.grpc.Serve(grpcLis); err != nil {
			errc <- fmt.Errorf("embedd/server: gRPC: %w", err)
		}
	})
	if httpLis != nil {
		wg.Go(func() {
			var err error
			if s.cfg.TLSCert != "" {
				err = s.http.ServeTLS(httpLis, s.cfg.TLSCert, s.cfg.TLSKey)
			} else {
				err = s.http.Serve(httpLis)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("embedd/server: HTTP: %w", err)
			}
		})
	}
	s.log.Info("embedd: listening", "grpc", grpcLis.Addr().String(), "http", addrOf(httpLis))

	var serveErr error
	if s.beforeLoad != nil {
		s.beforeLoad()
	}
	st, err := s.load()
	if err != nil {
		serveErr = err
	} else {
		s.state.Store(st)
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		s.health.SetServingStatus(embeddv1.EmbeddingService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
		s.health.SetServingStatus(embeddv1.IndexService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
		s.log.Info("embedd: serving", "models", len(st.pipes))
		select {
		case <-ctx.Done():
		case serveErr = <-errc:
		}
	}
	shutErr := s.shutdown(st)
	wg.Wait()
	return errors.Join(serveErr, shutErr)
}

func addrOf(l net.Listener) string {
	if l == nil {
		return "off"
	}
	return l.Addr().String()
}

// load opens the registry (unless given), starts a batcher per model and
// opens the collections.
func (s *Server) load() (*state, error) {
	reg := s.given
	if reg == nil {
		var err error
		if reg, err = models.OpenRegistry(s.cfg.Registry(), s.log); err != nil {
			return nil, err
		}
	}
	st := &state{reg: reg, pipes: map[string]*pipeline{}}
	dev, err := gpusearch.ParseDevice(s.cfg.SearchDevice)
	if err != nil { // Validate has checked it
		return nil, errors.Join(fmt.Errorf("embedd/server: search_device: %w", err), s.closeState(st))
	}
	backend, closeBackend, err := gpusearch.Select(dev, s.log, gpusearch.WithFP16(s.cfg.SearchFP16))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("embedd/server: search_device: %w", err), s.closeState(st))
	}
	st.closeBackend, st.search = closeBackend, backend.Name()
	if st.collections, err = index.OpenManager(s.cfg.DataDir, index.WithLogger(s.log), index.WithBackend(backend)); err != nil {
		return nil, errors.Join(fmt.Errorf("embedd/server: data_dir: %w", err), s.closeState(st))
	}
	for _, mc := range s.cfg.Models {
		m, err := reg.Get(mc.ID)
		if err != nil {
			return nil, errors.Join(err, s.closeState(st))
		}
		b, err := batch.New(m, batch.Config{
			Dim: m.Info().Dim, MaxBatchTokens: mc.MaxBatchTokens, MaxBatchSize: mc.MaxBatchSize,
			MaxWait: time.Duration(mc.MaxWait), QueueSize: mc.QueueSize, Workers: mc.Workers,
			Observe: s.observeBatch(mc.ID),
		})
		if err != nil {
			return nil, errors.Join(err, s.closeState(st))
		}
		st.pipes[mc.ID] = &pipeline{model: m, batcher: b}
		labels := prometheus.Labels{"model": mc.ID}
		s.metrics.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "embedd_queue_depth", Help: "Texts waiting for a batch.", ConstLabels: labels},
				func() float64 { return float64(b.QueueDepth()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "embedd_dropped_texts_total", Help: "Texts of cancelled or expired requests dropped before inference.", ConstLabels: labels},
				func() float64 { return float64(b.Dropped()) }),
		)
	}
	return st, nil
}

// observeBatch feeds a batcher's statistics into the metrics.
func (s *Server) observeBatch(model string) func(batch.Stats) {
	rows := s.metrics.batchRows.WithLabelValues(model)
	padding := s.metrics.batchPadding.WithLabelValues(model)
	run := s.metrics.batchRun.WithLabelValues(model)
	wait := s.metrics.queueWait.WithLabelValues(model)
	tokens := s.metrics.tokens.WithLabelValues(model)
	texts := s.metrics.texts.WithLabelValues(model)
	return func(st batch.Stats) {
		rows.Observe(float64(st.Rows))
		padding.Observe(float64(st.PaddedTokens) / float64(max(1, st.Tokens)))
		run.Observe(st.Run.Seconds())
		wait.Observe(st.QueueWait.Seconds())
		tokens.Add(float64(st.Tokens))
		texts.Add(float64(st.Rows))
		if st.Err != nil {
			s.log.Error("embedd: batch failed", "model", model, "rows", st.Rows, "err", st.Err)
		}
	}
}

// shutdown stops serving within the grace period and releases everything.
func (s *Server) shutdown(st *state) error {
	s.draining.Store(true)
	s.health.Shutdown() // every service NOT_SERVING
	grace := time.Duration(s.cfg.ShutdownGrace)
	s.log.Info("embedd: shutting down", "grace", grace)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	var errs []error
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("embedd/server: HTTP shutdown: %w", err))
		s.http.Close()
	}
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("embedd: grace period over, cancelling the calls still running")
		s.grpc.Stop()
		<-done
	}
	if st != nil {
		errs = append(errs, s.closeState(st))
	}
	s.stopTracing()
	s.log.Info("embedd: stopped")
	return errors.Join(errs...)
}

// closeState closes the batchers (draining them), the collections, and
// the registry if the server opened it.
func (s *Server) closeState(st *state) error {
	for _, p := range st.pipes {
		p.batcher.Close()
	}
	err := st.collections.Close()
	if st.closeBackend != nil {
		err = errors.Join(err, st.closeBackend())
	}
	if st.reg != s.given {
		err = errors.Join(err, st.reg.Close())
	}
	return err
}
