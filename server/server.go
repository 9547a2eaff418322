// Package server is embedd's front door: the gRPC services, the
// OpenAI-compatible HTTP endpoint, health, metrics, limits on messages,
// auth, rate limits, tracing and shutdown. It is transport only: every call
// goes to the application core (package core), whose errors it maps to
// gRPC codes and HTTP statuses, each in one table (errors.go).
//
// Data flow of one request: interceptors (request id, log, metrics, panic
// recovery, auth, rate limit) → decode → core (limits, tokenizer, cache,
// the model's batcher, ONNX Runtime, pooling, options; or a collection) →
// encode.
//
// Tracing (Config.Tracing, or WithTracerProvider) adds OpenTelemetry spans:
// one server span per RPC and per /v1/embeddings request, joining the
// caller's trace (W3C traceparent), and under it the core's "embed" with
// "tokenize", "cache", "queue_wait" and "inference".
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

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/core/batch"
	"github.com/embedd/embedd/core/cache"
	"github.com/embedd/embedd/models"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
	"github.com/embedd/embedd/server/ratelimit"
)

// Server serves embedd over gRPC and HTTP. Create it with New, run it with
// Serve.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	limiter *ratelimit.Limiter // nil when rate limiting is off
	calls   chan struct{}      // a slot per gRPC call running (MaxGRPCCalls)
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

	loadedAt int64                     // Unix time the models loaded: set before core is stored
	core     atomic.Pointer[core.Core] // nil until the models are loaded
	draining atomic.Bool               // set when shutdown begins
	serveMu  sync.Mutex                // guards served
	served   bool

	batches atomic.Pointer[batchState] // the Files and Batches API; nil until loaded
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
	s := &Server{cfg: cfg, log: slog.Default(), metrics: newMetrics(), calls: make(chan struct{}, cfg.MaxGRPCCalls)}
	for _, o := range opts {
		o(s)
	}
	if cfg.RateLimit > 0 {
		s.limiter = ratelimit.New(cfg.RateLimit, cfg.RateBurst)
	}
	s.metrics.registerCache(s.cacheStats)

	gopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second,
			MaxConnectionAge: time.Duration(cfg.MaxConnectionAge), MaxConnectionAgeGrace: time.Duration(cfg.MaxConnectionAgeGrace)}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(uint32(cfg.MaxConcurrentStreams)),
		grpc.ConnectionTimeout(time.Duration(cfg.HandshakeTimeout)),
		grpc.ChainUnaryInterceptor(s.observeUnary, recoverUnary(s.log), s.admitUnary, s.authUnary, s.rateUnary),
		grpc.ChainStreamInterceptor(s.observeStream, recoverStream(s.log), s.admitStream, s.authStream, s.rateStream),
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
		ReadTimeout:       time.Duration(cfg.HTTPReadTimeout),
		IdleTimeout:       time.Duration(cfg.HTTPIdleTimeout),
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
		ll := newLimitListener(httpLis, s.cfg.MaxHTTPConnections)
		httpLis, s.http.ConnState = ll, ll.connState
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
	c, err := s.load()
	if err != nil {
		serveErr = err
	} else {
		s.loadedAt = time.Now().Unix()
		s.core.Store(c)
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		s.health.SetServingStatus(embeddv1.EmbeddingService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
		s.health.SetServingStatus(embeddv1.IndexService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
		s.log.Info("embedd: serving", "models", len(c.Models()), "search", c.SearchBackend())
		select {
		case <-ctx.Done():
		case serveErr = <-errc:
		}
	}
	shutErr := s.shutdown(c)
	wg.Wait()
	return errors.Join(serveErr, shutErr)
}

func addrOf(l net.Listener) string {
	if l == nil {
		return "off"
	}
	return l.Addr().String()
}

// load opens the core: the registry (unless given), a pipeline per model,
// the collections and the search backend; and exports each model's queue.
func (s *Server) load() (*core.Core, error) {
	opts := []core.Option{core.WithLogger(s.log), core.WithBatchObserver(s.observeBatch())}
	if s.given != nil {
		opts = append(opts, core.WithRegistry(s.given))
	}
	if s.tracer != nil {
		opts = append(opts, core.WithTracer(s.tracer))
	}
	c, err := core.Open(s.cfg.Config, opts...)
	if err != nil {
		return nil, err
	}
	if err := s.openBatches(c); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	for _, m := range c.Models() {
		labels := prometheus.Labels{"model": m.ID}
		queue := func() core.QueueStats { q, _ := c.Queue(m.ID); return q }
		s.metrics.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "embedd_queue_depth", Help: "Texts waiting for a batch.", ConstLabels: labels},
				func() float64 { return float64(queue().Depth) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "embedd_bulk_queue_depth", Help: "Texts of batch jobs waiting in the bulk lane (run when no interactive text waits).", ConstLabels: labels},
				func() float64 { return float64(queue().BulkDepth) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "embedd_dropped_texts_total", Help: "Texts of cancelled or expired requests dropped before inference.", ConstLabels: labels},
				func() float64 { return float64(queue().Dropped) }),
		)
	}
	return c, nil
}

// cacheStats reports the core's embedding cache (zeros while loading).
func (s *Server) cacheStats() cache.Stats {
	if c := s.core.Load(); c != nil {
		return c.CacheStats()
	}
	return cache.Stats{}
}

// observeBatch feeds the batchers' statistics into the metrics.
func (s *Server) observeBatch() func(model string, st batch.Stats) {
	m := s.metrics
	return func(model string, st batch.Stats) {
		m.batchRows.WithLabelValues(model).Observe(float64(st.Rows))
		m.batchPadding.WithLabelValues(model).Observe(float64(st.PaddedTokens) / float64(max(1, st.Tokens)))
		m.batchRun.WithLabelValues(model).Observe(st.Run.Seconds())
		m.queueWait.WithLabelValues(model).Observe(st.QueueWait.Seconds())
		m.tokens.WithLabelValues(model).Add(float64(st.Tokens))
		m.texts.WithLabelValues(model).Add(float64(st.Rows))
		if st.Err != nil {
			s.log.Error("embedd: batch failed", "model", model, "rows", st.Rows, "err", st.Err)
		}
	}
}

// shutdown stops serving within the grace period and releases everything.
func (s *Server) shutdown(c *core.Core) error {
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
	s.closeBatches()
	if c != nil {
		errs = append(errs, c.Close())
	}
	s.stopTracing()
	s.log.Info("embedd: stopped")
	return errors.Join(errs...)
}
