package server

import (
	"context"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/models/modelstest"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// testReg holds two models, "a" (default) and "b", both the test model of
// scripts/setup.sh, shared by the tests (each server gets its own batchers).
var (
	testReg    *models.Registry
	skipReason string
)

func TestMain(m *testing.M) {
	dir := models.DefaultRegistryConfig().Models[0].Path
	var err error
	testReg, err = models.OpenRegistry(models.RegistryConfig{Models: []models.Config{
		{ID: "a", Path: dir, Aliases: []string{"text-embedding-ada-002"}}, {ID: "b", Path: dir},
	}}, slog.New(slog.DiscardHandler))
	skipReason = modelstest.Missing(err)
	os.Exit(modelstest.Finish(m.Run(), testReg))
}

// testServer is a running server on loopback with a client connection.
type testServer struct {
	stop     func() // stops the server and checks Serve's result; idempotent
	s        *Server
	conn     *grpc.ClientConn
	embed    embeddv1.EmbeddingServiceClient
	httpBase string
}

// testConfig is the config for the shared registry's two models.
func testConfig() Config {
	dir := models.DefaultRegistryConfig().Models[0].Path
	return Config{Config: core.Config{Models: []core.ModelConfig{
		{Config: models.Config{ID: "a", Path: dir}},
		{Config: models.Config{ID: "b", Path: dir}},
	}}}
}

// startServer serves cfg on loopback until the test ends, then checks that
// Serve returned without error.
func startServer(t testing.TB, cfg Config, opts ...Option) *testServer {
	t.Helper()
	return startServerWith(t, cfg, grpc.WithTransportCredentials(insecure.NewCredentials()), opts...)
}

// startServerWith is startServer with the client's transport credentials.
func startServerWith(t testing.TB, cfg Config, creds grpc.DialOption, opts ...Option) *testServer {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	opts = append([]Option{WithRegistry(testReg), WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	s, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, gl, hl) }()
	conn, err := grpc.NewClient(gl.Addr().String(), creds)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{s: s, conn: conn, embed: embeddv1.NewEmbeddingServiceClient(conn), httpBase: "http://" + hl.Addr().String()}
	ts.stop = sync.OnceFunc(func() {
		conn.Close()
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("Serve did not return within a minute of cancellation")
		}
	})
	t.Cleanup(ts.stop)
	hc := healthpb.NewHealthClient(conn)
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("server not SERVING after a minute: %v %v", r, err)
		}
	}
	return ts
}
