package server

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// The caller's trace, as a W3C traceparent (sampled).
const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
	traceparent   = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// recorded starts a server whose spans go to an in-memory recorder.
func recorded(t *testing.T, cfg Config) (*testServer, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return startServer(t, cfg, WithTracerProvider(tp)), rec
}

// spansOf waits until the recorder holds an ended span named root in
// trace, then returns that trace's ended spans by name.
func spansOf(t *testing.T, rec *tracetest.SpanRecorder, trace, root string) map[string][]sdktrace.ReadOnlySpan {
	t.Helper()
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		byName := map[string][]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() == trace {
				byName[s.Name()] = append(byName[s.Name()], s)
			}
		}
		if len(byName[root]) > 0 {
			return byName
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("no span %q in trace %s; spans: %v", root, trace, byName)
		}
	}
}

// one returns the only span of a name.
func one(t *testing.T, spans map[string][]sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	if len(spans[name]) != 1 {
		t.Fatalf("%d spans named %q, want 1 (spans: %v)", len(spans[name]), name, names(spans))
	}
	return spans[name][0]
}

func names(spans map[string][]sdktrace.ReadOnlySpan) []string {
	var ns []string
	for n, ss := range spans {
		ns = append(ns, fmt.Sprintf("%s×%d", n, len(ss)))
	}
	slices.Sort(ns)
	return ns
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func childOf(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.Parent().SpanID() != parent.SpanContext().SpanID() || child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("span %q has parent %v, want %q (%v)", child.Name(), child.Parent().SpanID(), parent.Name(), parent.SpanContext().SpanID())
	}
}

// within checks that inner lies inside outer in time.
func within(t *testing.T, inner, outer sdktrace.ReadOnlySpan) {
	t.Helper()
	if inner.StartTime().Before(outer.StartTime()) || inner.EndTime().After(outer.EndTime()) {
		t.Errorf("span %q [%v, %v] is not within %q [%v, %v]", inner.Name(), inner.StartTime(), inner.EndTime(),
			outer.Name(), outer.StartTime(), outer.EndTime())
	}
}

func TestTracingEmbedSpanTree(t *testing.T) {
	ts, rec := recorded(t, testConfig())
	texts := []string{"the food was delicious", "the waiter was friendly"} // similar lengths: one batch
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", traceparent, "x-request-id", "trace-test-1")
	if _, err := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: texts}); err != nil {
		t.Fatal(err)
	}
	spans := spansOf(t, rec, clientTraceID, "embedd.v1.EmbeddingService/Embed")

	rpc := one(t, spans, "embedd.v1.EmbeddingService/Embed")
	if rpc.SpanKind() != trace.SpanKindServer || !rpc.Parent().IsRemote() || rpc.Parent().SpanID().String() != clientSpanID {
		t.Errorf("server span: kind %v, parent %v (remote %v), want a server span under the client's %s",
			rpc.SpanKind(), rpc.Parent().SpanID(), rpc.Parent().IsRemote(), clientSpanID)
	}
	if got := attr(rpc, "rpc.method").AsString(); got != "Embed" {
		t.Errorf("rpc.method %q", got)
	}
	if got := attr(rpc, "rpc.service").AsString(); got != "embedd.v1.EmbeddingService" {
		t.Errorf("rpc.service %q", got)
	}
	if v := attr(rpc, "rpc.grpc.status_code"); v.Type() != attribute.INT64 || v.AsInt64() != 0 {
		t.Errorf("rpc.grpc.status_code %v, want 0", v.String())
	}
	if got := attr(rpc, "embedd.request_id").AsString(); got != "trace-test-1" {
		t.Errorf("embedd.request_id %q, want the caller's", got)
	}

	embed := one(t, spans, "embed")
	childOf(t, embed, rpc)
	within(t, embed, rpc)
	if attr(embed, "embedd.model").AsString() != "a" || attr(embed, "embedd.texts").AsInt64() != 2 {
		t.Errorf("embed attributes %v", embed.Attributes())
	}
	tok, cache := one(t, spans, "tokenize"), one(t, spans, "cache")
	for _, s := range []sdktrace.ReadOnlySpan{tok, cache} {
		childOf(t, s, embed)
		within(t, s, embed)
	}
	if attr(tok, "embedd.texts").AsInt64() != 2 || attr(tok, "embedd.tokens").AsInt64() < 8 {
		t.Errorf("tokenize attributes %v", tok.Attributes())
	}
	if attr(cache, "embedd.cache.hits").AsInt64() != 0 || attr(cache, "embedd.cache.misses").AsInt64() != 2 {
		t.Errorf("cache attributes %v", cache.Attributes())
	}
	if tok.EndTime().After(cache.StartTime()) {
		t.Error("cache lookup started before tokenization ended")
	}

	waits, runs := spans["queue_wait"], spans["inference"]
	if len(waits) == 0 || len(waits) != len(runs) {
		t.Fatalf("%d queue_wait and %d inference spans, want one pair per batch", len(waits), len(runs))
	}
	texts2 := int64(0)
	for _, in := range runs {
		childOf(t, in, embed)
		within(t, in, embed)
		texts2 += attr(in, "embedd.batch.texts").AsInt64()
		if attr(in, "embedd.batch.rows").AsInt64() < attr(in, "embedd.batch.texts").AsInt64() ||
			attr(in, "embedd.batch.padded_tokens").AsInt64() < attr(in, "embedd.batch.tokens").AsInt64() ||
			attr(in, "embedd.model").AsString() != "a" || attr(in, "embedd.pooling").AsString() != "mean" ||
			attr(in, "embedd.device").AsString() == "" {
			t.Errorf("inference attributes %v", in.Attributes())
		}
		if !in.EndTime().After(in.StartTime()) {
			t.Errorf("inference took no time: %v to %v", in.StartTime(), in.EndTime())
		}
		id := attr(in, "embedd.batch.id").AsInt64()
		i := slices.IndexFunc(waits, func(w sdktrace.ReadOnlySpan) bool { return attr(w, "embedd.batch.id").AsInt64() == id })
		if i < 0 {
			t.Fatalf("no queue_wait for batch %d", id)
		}
		w := waits[i]
		childOf(t, w, embed)
		within(t, w, embed)
		if !w.EndTime().Equal(in.StartTime()) || w.StartTime().Before(cache.EndTime()) || w.EndTime().Before(w.StartTime()) {
			t.Errorf("queue_wait [%v, %v] should start after the cache lookup (%v) and end when inference starts (%v)",
				w.StartTime(), w.EndTime(), cache.EndTime(), in.StartTime())
		}
	}
	if texts2 != 2 {
		t.Errorf("inference spans cover %d texts, want 2", texts2)
	}
	if n := len(rec.Ended()); n != 4+2*len(runs) {
		t.Errorf("%d spans ended, want %d (no strays, no health checks): %v", n, 4+2*len(runs), names(spans))
	}

	// The same texts again, in another trace: all from the cache, no batch.
	const trace2 = "0af7651916cd43dd8448eb211c80319c"
	ctx = metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+trace2+"-b7ad6b7169203331-01")
	if _, err := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: texts}); err != nil {
		t.Fatal(err)
	}
	spans = spansOf(t, rec, trace2, "embedd.v1.EmbeddingService/Embed")
	if c := one(t, spans, "cache"); attr(c, "embedd.cache.hits").AsInt64() != 2 || attr(c, "embedd.cache.misses").AsInt64() != 0 {
		t.Errorf("second call's cache attributes %v", c.Attributes())
	}
	if len(spans["queue_wait"])+len(spans["inference"]) != 0 {
		t.Errorf("a call served from the cache has batch spans: %v", names(spans))
	}
}

func TestTracingErrorsAndRootTraces(t *testing.T) {
	ts, rec := recorded(t, testConfig())
	// No traceparent: a new root trace.
	_, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{})
	if err == nil {
		t.Fatal("empty request accepted")
	}
	var rpc sdktrace.ReadOnlySpan
	for start := time.Now(); rpc == nil; time.Sleep(time.Millisecond) {
		for _, s := range rec.Ended() {
			if s.Name() == "embedd.v1.EmbeddingService/Embed" {
				rpc = s
			}
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("no server span")
		}
	}
	if rpc.Parent().IsValid() {
		t.Errorf("a call without traceparent has parent %v", rpc.Parent())
	}
	if got := attr(rpc, "rpc.grpc.status_code").AsInt64(); got != int64(codes.InvalidArgument) {
		t.Errorf("rpc.grpc.status_code %d, want INVALID_ARGUMENT", got)
	}
	if rpc.Status().Code != otelcodes.Unset {
		t.Errorf("server span of a client error has status %v; only server failures are errors", rpc.Status())
	}
	spans := spansOf(t, rec, rpc.SpanContext().TraceID().String(), "embed")
	if e := one(t, spans, "embed"); e.Status().Code != otelcodes.Error || !strings.Contains(e.Status().Description, "empty") {
		t.Errorf("embed span of a refused request: status %v", e.Status())
	}
}

func TestTracingHTTPAndStream(t *testing.T) {
	ts, rec := recorded(t, testConfig())

	req, _ := http.NewRequest(http.MethodPost, ts.httpBase+"/v1/embeddings", strings.NewReader(`{"input": ["over http"]}`))
	req.Header.Set("Traceparent", traceparent)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	spans := spansOf(t, rec, clientTraceID, "POST /v1/embeddings")
	h := one(t, spans, "POST /v1/embeddings")
	if h.Parent().SpanID().String() != clientSpanID || h.SpanKind() != trace.SpanKindServer {
		t.Errorf("HTTP span: parent %v kind %v", h.Parent().SpanID(), h.SpanKind())
	}
	if attr(h, "http.response.status_code").AsInt64() != 200 || attr(h, "embedd.request_id").AsString() != resp.Header.Get("X-Request-Id") {
		t.Errorf("HTTP span attributes %v", h.Attributes())
	}
	childOf(t, one(t, spans, "embed"), h)
	if len(spans["inference"]) == 0 {
		t.Errorf("no inference span under the HTTP request: %v", names(spans))
	}
	// Health checks get no span.
	if r, err := hc.Get(ts.httpBase + "/healthz"); err == nil {
		r.Body.Close()
	}

	const trace3 = "11111111111111111111111111111111"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+trace3+"-2222222222222222-01")
	stream, err := ts.embed.EmbedStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		stream.Send(&embeddv1.EmbedStreamRequest{Id: uint64(i), Texts: []string{fmt.Sprint("chunk ", i)}})
	}
	stream.CloseSend()
	for {
		if _, err := stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	spans = spansOf(t, rec, trace3, "embedd.v1.EmbeddingService/EmbedStream")
	rpc := one(t, spans, "embedd.v1.EmbeddingService/EmbedStream")
	if len(spans["embed"]) != 2 {
		t.Fatalf("%d embed spans for 2 chunks: %v", len(spans["embed"]), names(spans))
	}
	for _, e := range spans["embed"] {
		childOf(t, e, rpc)
	}
	for _, s := range rec.Ended() {
		if strings.Contains(s.Name(), "healthz") || strings.Contains(s.Name(), "Health/") {
			t.Errorf("span for a health check: %q", s.Name())
		}
	}
}

func TestTracingOffBuildsNothing(t *testing.T) {
	ts := startServer(t, testConfig())
	if _, err := ts.embed.Embed(metadata.AppendToOutgoingContext(context.Background(), "traceparent", traceparent),
		&embeddv1.EmbedRequest{Texts: []string{"untraced"}}); err != nil {
		t.Fatal(err)
	}
	if ts.s.tracer != nil || ts.s.ownTP != nil {
		t.Errorf("tracing off, yet tracer %v and provider %v", ts.s.tracer, ts.s.ownTP)
	}
	if _, span := ts.s.startRPCSpan(context.Background(), "/a/B", "id", time.Now()); span != nil {
		t.Error("startRPCSpan with tracing off returned a span")
	}
}

// collector is an OTLP/gRPC trace collector that keeps what it receives.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu   sync.Mutex // guards reqs
	reqs []*coltracepb.ExportTraceServiceRequest
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// spans returns the received span names by trace id, and the service names.
func (c *collector) spans() (byTrace map[string][]string, services []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byTrace = map[string][]string{}
	for _, req := range c.reqs {
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					services = append(services, kv.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					id := fmt.Sprintf("%x", s.TraceId)
					byTrace[id] = append(byTrace[id], s.Name)
				}
			}
		}
	}
	return byTrace, services
}

func TestTracingExportsOverOTLPAndFlushesAtShutdown(t *testing.T) {
	col := &collector{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, col)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)

	cfg := testConfig()
	zero := 0.0
	cfg.Tracing = TracingConfig{OTLPEndpoint: lis.Addr().String(), Insecure: true, SampleRatio: &zero, ServiceName: "embedd-test"}
	ts := startServer(t, cfg)
	if ts.s.ownTP == nil {
		t.Fatal("tracing on, but the server built no provider")
	}
	// Sample ratio 0: a root trace is not recorded, a sampled caller's is.
	if _, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{"not sampled"}}); err != nil {
		t.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", traceparent)
	if _, err := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: []string{"sampled by the caller"}}); err != nil {
		t.Fatal(err)
	}
	ts.stop() // the batch processor's 5s delay has not passed: only the shutdown's flush sends the spans
	byTrace, services := col.spans()
	got := byTrace[clientTraceID]
	slices.Sort(got)
	want := []string{"cache", "embed", "embedd.v1.EmbeddingService/Embed", "inference", "queue_wait", "tokenize"}
	if !slices.Equal(got, want) {
		t.Errorf("collector got spans %v for the caller's trace, want %v", got, want)
	}
	if len(byTrace) != 1 {
		t.Errorf("collector got %d traces, want only the caller's (sample_ratio 0): %v", len(byTrace), byTrace)
	}
	if len(services) == 0 || slices.ContainsFunc(services, func(s string) bool { return s != "embedd-test" }) {
		t.Errorf("service.name %v, want embedd-test", services)
	}
}

func TestTracingConfig(t *testing.T) {
	ratio := func(r float64) *float64 { return &r }
	cases := []struct {
		name string
		tr   TracingConfig
		want string // "" = valid
	}{
		{"off", TracingConfig{}, ""},
		{"on", TracingConfig{OTLPEndpoint: "otel-collector:4317"}, ""},
		{"ratio 0", TracingConfig{OTLPEndpoint: "[::1]:4317", Insecure: true, SampleRatio: ratio(0), ServiceName: "embedd-eu"}, ""},
		{"no port", TracingConfig{OTLPEndpoint: "collector"}, `tracing.otlp_endpoint: "collector" is not host:port`},
		{"no host", TracingConfig{OTLPEndpoint: ":4317"}, `tracing.otlp_endpoint: ":4317" is not host:port`},
		{"port 0", TracingConfig{OTLPEndpoint: "collector:0"}, `tracing.otlp_endpoint: "collector:0" has no valid port (1 to 65535)`},
		{"url", TracingConfig{OTLPEndpoint: "http://collector:4317"}, `tracing.otlp_endpoint: "http://collector:4317" is not host:port`},
		{"ratio high", TracingConfig{OTLPEndpoint: "c:4317", SampleRatio: ratio(1.5)}, "tracing.sample_ratio: 1.5 is not in [0, 1]"},
		{"ratio negative", TracingConfig{OTLPEndpoint: "c:4317", SampleRatio: ratio(-0.1)}, "tracing.sample_ratio: -0.1 is not in [0, 1]"},
		{"ratio NaN", TracingConfig{OTLPEndpoint: "c:4317", SampleRatio: ratio(math.NaN())}, "tracing.sample_ratio: NaN is not in [0, 1]"},
		{"service name", TracingConfig{OTLPEndpoint: "c:4317", ServiceName: "a\nb"}, `tracing.service_name: "a\nb" is not 1 to 255 bytes of printable characters`},
		{"insecure alone", TracingConfig{Insecure: true}, "tracing.insecure: true is set but tracing.otlp_endpoint is empty (tracing is off)"},
		{"ratio alone", TracingConfig{SampleRatio: ratio(0.5)}, "tracing.sample_ratio: 0.5 is set but tracing.otlp_endpoint is empty"},
		{"name alone", TracingConfig{ServiceName: "x"}, `tracing.service_name: "x" is set but tracing.otlp_endpoint is empty`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Tracing = c.tr
			err := cfg.Defaults().Validate()
			if c.want == "" && err != nil {
				t.Fatalf("valid tracing config refused: %v", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}

	d := Config{Tracing: TracingConfig{OTLPEndpoint: "c:4317"}}.Defaults().Tracing
	if d.SampleRatio == nil || *d.SampleRatio != 1 || d.ServiceName != "embedd" {
		t.Errorf("defaults with an endpoint: %+v", d)
	}
	if d := (Config{}).Defaults().Tracing; d != (TracingConfig{}) {
		t.Errorf("defaults without an endpoint: %+v, want tracing off and zero", d)
	}
	if d := (Config{Tracing: TracingConfig{OTLPEndpoint: "c:4317", SampleRatio: ratio(0)}}).Defaults().Tracing; *d.SampleRatio != 0 {
		t.Errorf("an explicit sample_ratio 0 became %v", *d.SampleRatio)
	}
}

func TestTracingConfigFromFileAndEnv(t *testing.T) {
	p := writeConfig(t, `{"tracing": {"otlp_endpoint": "collector:4317", "insecure": true, "sample_ratio": 0.25, "service_name": "e"}}`)
	c, err := ReadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if tr := c.Tracing; tr.OTLPEndpoint != "collector:4317" || !tr.Insecure || tr.SampleRatio == nil || *tr.SampleRatio != 0.25 || tr.ServiceName != "e" {
		t.Errorf("read %+v", tr)
	}
	if _, err := ReadConfig(writeConfig(t, `{"tracing": {"endpoint": "c:1"}}`)); err == nil || !strings.Contains(err.Error(), `unknown field "endpoint"`) {
		t.Errorf("unknown tracing field: %v", err)
	}

	for _, tc := range []struct {
		env      map[string]string
		endpoint string
		insecure bool
	}{
		{map[string]string{}, "", false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}, "collector:4317", false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, "collector:4317", true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example/v1"}, "collector.example:4317", false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b:2"}, "b:2", false},
	} {
		got := Config{}.ApplyEnv(func(k string) string { return tc.env[k] }).Tracing
		if got.OTLPEndpoint != tc.endpoint || got.Insecure != tc.insecure {
			t.Errorf("env %v: tracing %+v, want endpoint %q insecure %v", tc.env, got, tc.endpoint, tc.insecure)
		}
	}
	// The environment overrides the file.
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317"}
	if got := c.ApplyEnv(func(k string) string { return env[k] }).Tracing; got.OTLPEndpoint != "env:4317" || got.SampleRatio == nil || *got.SampleRatio != 0.25 {
		t.Errorf("env over file: %+v", got)
	}
}
