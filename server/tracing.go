package server

// OpenTelemetry tracing. When it is on (Config.Tracing.OTLPEndpoint, or
// WithTracerProvider), every call but health checks gets a span tree:
//
//	embedd.v1.EmbeddingService/Embed      server span, child of the caller's traceparent
//	│                                     (rpc.system, rpc.service, rpc.method,
//	│                                      rpc.grpc.status_code, embedd.request_id)
//	└─ embed                              embedd.model, embedd.texts (per EmbedStream chunk)
//	   ├─ tokenize                        embedd.texts, embedd.tokens
//	   ├─ cache                           embedd.cache.hits, embedd.cache.misses
//	   ├─ queue_wait                      Submit → the batch's start; embedd.batch.id, embedd.batch.texts
//	   └─ inference                       the batch's model run, pooling included;
//	                                      embedd.batch.{id,rows,texts,tokens,padded_tokens},
//	                                      embedd.model, embedd.device, embedd.pooling
//
// and "POST /v1/embeddings" (http.*, embedd.request_id) for the HTTP
// endpoint. A batch runs the texts of many requests, so no request's span
// can be open around it: queue_wait and inference are recorded after the
// fact, with the times the batcher reports (batch.SubmitTimed), one pair per
// batch that ran some of the request's texts. Pooling runs inside the
// model's Forward call, so it has no span of its own.
//
// When tracing is off, tracer is nil: no provider, no exporter, no
// goroutines, and the code paths below skip span work without allocating.

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/server/batch"
)

// tracerName is the instrumentation scope of embedd's spans.
const tracerName = "github.com/embedd/embedd/server"

// tracingFlushTimeout bounds the flush of buffered spans at shutdown.
const tracingFlushTimeout = 5 * time.Second

// Attribute keys of embedd's own span attributes.
const (
	attrRequestID   = attribute.Key("embedd.request_id")
	attrModel       = attribute.Key("embedd.model")
	attrDevice      = attribute.Key("embedd.device")
	attrPooling     = attribute.Key("embedd.pooling")
	attrTexts       = attribute.Key("embedd.texts")
	attrTokens      = attribute.Key("embedd.tokens")
	attrCacheHits   = attribute.Key("embedd.cache.hits")
	attrCacheMisses = attribute.Key("embedd.cache.misses")
	attrBatchID     = attribute.Key("embedd.batch.id")
	attrBatchRows   = attribute.Key("embedd.batch.rows")
	attrBatchTexts  = attribute.Key("embedd.batch.texts") // the request's texts in the batch
	attrBatchTokens = attribute.Key("embedd.batch.tokens")
	attrBatchPadded = attribute.Key("embedd.batch.padded_tokens")
)

// traceparentField is the W3C trace context's metadata key.
const traceparentField = "traceparent"

// propagator reads the caller's W3C trace context.
var propagator = propagation.TraceContext{}

// noSpan is the span the helpers return when tracing is off: every method
// is a no-op.
var noSpan = trace.SpanFromContext(context.Background())

// version is the module's version as built ("(devel)" outside a release),
// for service.version.
var version = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := cmp.Or(bi.Main.Version, "(devel)")
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && v == "(devel)" {
			v += "+" + s.Value[:min(12, len(s.Value))]
		}
	}
	return v
})

// newTracerProvider builds a provider that batches spans to the OTLP/gRPC
// exporter of cfg (which must be on, after Defaults). It does not connect
// yet. The caller owns the provider and must Shut it down, which flushes
// the spans and stops the exporter's goroutines.
func newTracerProvider(ctx context.Context, cfg TracingConfig) (*sdktrace.TracerProvider, error) {
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES
		resource.WithAttributes(
			semconv.ServiceNameKey.String(cfg.ServiceName),
			semconv.ServiceVersionKey.String(version()),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("embedd/server: tracing resource: %w", err)
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint)}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("embedd/server: tracing.otlp_endpoint %q: %w", cfg.OTLPEndpoint, err)
	}
	ratio := 1.0
	if cfg.SampleRatio != nil {
		ratio = *cfg.SampleRatio
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	), nil
}

// startTracing sets the tracer from the given provider or, when the config
// turns tracing on, from one it builds and owns. Serve calls it before
// serving.
func (s *Server) startTracing() error {
	tp := s.givenTP
	if tp == nil {
		if !s.cfg.Tracing.On() {
			return nil
		}
		own, err := newTracerProvider(context.Background(), s.cfg.Tracing)
		if err != nil {
			return err
		}
		s.ownTP, tp = own, own
		s.log.Info("embedd: tracing", "otlp_endpoint", s.cfg.Tracing.OTLPEndpoint,
			"sample_ratio", *s.cfg.Tracing.SampleRatio, "service_name", s.cfg.Tracing.ServiceName)
	}
	s.tracer = tp.Tracer(tracerName, trace.WithInstrumentationVersion(version()))
	return nil
}

// stopTracing flushes and shuts down the provider the server built, within
// tracingFlushTimeout. Spans that cannot reach the collector are logged as
// lost, not returned: telemetry never turns a clean shutdown into a failure.
func (s *Server) stopTracing() {
	if s.ownTP == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
	defer cancel()
	if err := s.ownTP.Shutdown(ctx); err != nil {
		s.log.Warn("embedd: tracing: spans not flushed at shutdown", "endpoint", s.cfg.Tracing.OTLPEndpoint, "err", err)
	}
}

// startSpan starts an internal span under ctx's; with tracing off it
// returns ctx and noSpan.
func (s *Server) startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, noSpan
	}
	return s.tracer.Start(ctx, name)
}

// endSpan ends span, marking it failed when err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(otelcodes.Error, status.Convert(err).Message())
	}
	span.End()
}

// metadataCarrier reads trace context from incoming gRPC metadata.
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// startRPCSpan starts the server span of a call at start, as a child of
// the caller's traceparent when there is one; nil when tracing is off and
// for health checks (load balancers' polling would only add noise).
func (s *Server) startRPCSpan(ctx context.Context, fullMethod, id string, start time.Time) (context.Context, trace.Span) {
	if s.tracer == nil || strings.HasPrefix(fullMethod, healthMethodPrefix) {
		return ctx, nil
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md[traceparentField]) > 0 {
		ctx = propagator.Extract(ctx, metadataCarrier(md))
	}
	name := strings.TrimPrefix(fullMethod, "/")
	service, method, _ := strings.Cut(name, "/")
	return s.tracer.Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(start),
		trace.WithAttributes(
			semconv.RPCSystemGRPC,
			semconv.RPCServiceKey.String(service),
			semconv.RPCMethodKey.String(method),
			attrRequestID.String(id),
		))
}

// endRPCSpan records the call's status code and ends span (nil: off). As
// OpenTelemetry's conventions for gRPC servers say, only codes that mean
// a server-side failure mark the span as an error.
func endRPCSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	st := status.Convert(err)
	span.SetAttributes(semconv.RPCGRPCStatusCodeKey.Int(int(st.Code())))
	switch st.Code() {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		span.SetStatus(otelcodes.Error, st.Message())
	}
	span.End()
}

// tracedStream is a ServerStream whose context carries the call's span.
type tracedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (t *tracedStream) Context() context.Context { return t.ctx }

// tracedPath is the one HTTP path with a server span: health checks and
// metric scrapes would only add noise.
const tracedPath = "/v1/embeddings"

// traceHTTP wraps the HTTP handler (outside its middleware, so that auth
// and rate limiting are inside the span) with a server span per
// /v1/embeddings request, a child of the caller's traceparent header.
func (s *Server) traceHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.tracer == nil || r.URL.Path != tracedPath {
			next.ServeHTTP(w, r)
			return
		}
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.tracer.Start(ctx, r.Method+" "+tracedPath,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				semconv.HTTPRequestMethodKey.String(r.Method),
				semconv.HTTPRouteKey.String(tracedPath),
				semconv.URLPathKey.String(r.URL.Path),
			))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(
			semconv.HTTPResponseStatusCodeKey.Int(sw.code),
			attrRequestID.String(w.Header().Get("X-Request-Id")),
		)
		if sw.code >= 500 {
			span.SetStatus(otelcodes.Error, http.StatusText(sw.code))
		}
	})
}

// submit sends seqs through the model's batcher. When ctx's span records,
// it asks the batcher for the request's timing and records "queue_wait"
// and "inference" spans after the fact, one pair per batch.
func (s *Server) submit(ctx context.Context, p *pipeline, seqs [][]int32) ([][]float32, error) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return p.batcher.Submit(ctx, seqs)
	}
	vecs, tm, err := p.batcher.SubmitTimed(ctx, seqs)
	s.traceBatches(ctx, p.model.Info(), tm, err)
	return vecs, err
}

// traceBatches records the queue wait and the model run of each batch of
// tm; when no batch ran (queue full, closed, ctx ended), a queue_wait span
// up to now carries the error.
func (s *Server) traceBatches(ctx context.Context, info models.Info, tm batch.Timing, err error) {
	if tm.Submitted.IsZero() {
		return
	}
	if len(tm.Batches) == 0 {
		if err != nil {
			_, q := s.tracer.Start(ctx, "queue_wait", trace.WithTimestamp(tm.Submitted))
			q.SetStatus(otelcodes.Error, err.Error())
			q.End()
		}
		return
	}
	for _, b := range tm.Batches {
		_, q := s.tracer.Start(ctx, "queue_wait", trace.WithTimestamp(tm.Submitted),
			trace.WithAttributes(attrBatchID.Int64(int64(b.ID)), attrBatchTexts.Int(b.Texts)))
		q.End(trace.WithTimestamp(b.Start))
		_, in := s.tracer.Start(ctx, "inference", trace.WithTimestamp(b.Start),
			trace.WithAttributes(
				attrModel.String(info.ID),
				attrDevice.String(info.Device.String()),
				attrPooling.String(string(info.Pooling)),
				attrBatchID.Int64(int64(b.ID)),
				attrBatchRows.Int(b.Rows),
				attrBatchTexts.Int(b.Texts),
				attrBatchTokens.Int(b.Tokens),
				attrBatchPadded.Int(b.PaddedTokens),
			))
		if b.Err != nil {
			in.SetStatus(otelcodes.Error, b.Err.Error())
		}
		in.End(trace.WithTimestamp(b.End))
	}
}
