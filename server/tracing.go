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
// endpoint. This file makes the server spans and owns the provider; the
// spans under "embed" are the core's (core.WithTracer, core/trace.go), which
// records queue_wait and inference after the fact, one pair per batch that
// ran some of the request's texts. Pooling runs inside the model's Forward
// call, so it has no span of its own.
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
)

// tracerName is the instrumentation scope of embedd's spans.
const tracerName = "github.com/embedd/embedd/server"

// tracingFlushTimeout bounds the flush of buffered spans at shutdown.
const tracingFlushTimeout = 5 * time.Second

// Attribute keys of embedd's own span attributes.
const (
	attrRequestID = attribute.Key("embedd.request_id")
)

// traceparentField is the W3C trace context's metadata key.
const traceparentField = "traceparent"

// propagator reads the caller's W3C trace context.
var propagator = propagation.TraceContext{}

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
