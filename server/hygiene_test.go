package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/client/clienttest"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

func TestAPIKeyAuth(t *testing.T) {
	cfg := testConfig()
	cfg.APIKeys = []string{"other-key-0123456789", testKey}
	ts := startServer(t, cfg)
	ctx := context.Background()
	req := &embeddv1.EmbedRequest{Texts: []string{"auth"}}
	if _, err := ts.embed.Embed(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no key: got %v, want UNAUTHENTICATED", err)
	}
	if _, err := ts.embed.Embed(withKey(ctx, "nearly-"+testKey), req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong key: got %v", err)
	}
	if _, err := ts.embed.Embed(withKey(ctx, testKey), req); err != nil {
		t.Errorf("second configured key refused: %v", err)
	}
	stream, err := ts.embed.EmbedStream(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream without key: got %v", err)
	}
	if _, err := healthpb.NewHealthClient(ts.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health check needs no key, got %v", err)
	}
}

func TestRateLimitPerClient(t *testing.T) {
	cfg := testConfig()
	cfg.RateLimit, cfg.RateBurst = 1, 2
	cfg.APIKeys = []string{testKey, "other-key-0123456789"}
	ts := startServer(t, cfg)
	ctx := withKey(context.Background(), testKey)
	req := &embeddv1.EmbedRequest{Texts: []string{"rate"}}
	var limited error
	for range 4 {
		if _, err := ts.embed.Embed(ctx, req); err != nil {
			limited = err
			break
		}
	}
	st := status.Convert(limited)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "rate limit") {
		t.Fatalf("4 calls at burst 2: got %v, want RESOURCE_EXHAUSTED naming the rate limit", limited)
	}
	hinted := false
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.RetryDelay.AsDuration() > 0 {
			hinted = true
		}
	}
	if !hinted {
		t.Error("rate-limit refusal carries no RetryInfo")
	}
	// Another client is not affected.
	if _, err := ts.embed.Embed(withKey(context.Background(), "other-key-0123456789"), req); err != nil {
		t.Errorf("another key was limited too: %v", err)
	}
}

func TestReflectionListsServices(t *testing.T) {
	ts := startServer(t, testConfig())
	rc, err := reflectionpb.NewServerReflectionClient(ts.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	resp, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	rc.CloseSend()
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	if !strings.Contains(strings.Join(names, " "), "embedd.v1.EmbeddingService") {
		t.Errorf("reflection lists %v", names)
	}
}

func TestNotServingUntilModelsLoad(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	cfg := testConfig()
	cfg.DataDir = t.TempDir()
	s, err := New(cfg, WithRegistry(testReg), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	s.beforeLoad = func() { <-gate }
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, gl, nil) }()
	conn, _ := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "embedd.v1.EmbeddingService"})
	if err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("before load: %v %v, want NOT_SERVING", r, err)
	}
	if _, err := embeddv1.NewEmbeddingServiceClient(conn).Embed(ctx, &embeddv1.EmbedRequest{Texts: []string{"x"}}); status.Code(err) != codes.Unavailable {
		t.Errorf("Embed before load: %v, want UNAVAILABLE", err)
	}
	close(gate)
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "embedd.v1.EmbeddingService"}); err == nil && r.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("never SERVING")
		}
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestPanicBecomesInternal(t *testing.T) {
	var logs strings.Builder
	ic := recoverUnary(slog.New(slog.NewTextHandler(&logs, nil)))
	_, err := ic(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) {
		panic("boom")
	})
	if status.Code(err) != codes.Internal || !strings.Contains(logs.String(), "panic in handler") || !strings.Contains(logs.String(), "/x/Y") {
		t.Errorf("got %v, logs %q", err, logs.String())
	}
}

func TestTLS(t *testing.T) {
	certFile, keyFile := clienttest.SelfSignedFiles(t)
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := testConfig()
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	ts := startServerTLS(t, cfg, pool)
	if _, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{"over tls"}}); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(strings.Replace(ts.httpBase, "http://", "https://", 1) + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTPS /healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	// A plaintext client is refused.
	plain, _ := grpc.NewClient(strings.TrimPrefix(ts.conn.Target(), "dns:///"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := embeddv1.NewEmbeddingServiceClient(plain).ListModels(ctx, &embeddv1.ListModelsRequest{}); err == nil {
		t.Error("plaintext call to a TLS server succeeded")
	}
}

// startServerTLS is startServer with a TLS client connection.
func startServerTLS(t *testing.T, cfg Config, pool *x509.CertPool) *testServer {
	t.Helper()
	return startServerWith(t, cfg, grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")))
}
