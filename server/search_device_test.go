package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/embedd/embedd/gpu"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// TestSearchDeviceChoice: without CUDA, "auto" serves on the CPU backend and
// says why in the log; an explicit "cuda:1" stops Serve with an error.
func TestSearchDeviceChoice(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if lib, err := gpu.Load(); err == nil {
		lib.Close()
		t.Skip("CUDA loads here; the fallback path is not exercised")
	}
	var logs bytes.Buffer
	cfg := testConfig()
	cfg.SearchDevice = "auto"
	ts := startServer(t, cfg, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ix := embeddv1.NewIndexServiceClient(ts.conn)
	ctx := context.Background()
	if _, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "c", Dimension: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "c", Records: []*embeddv1.Record{{Id: "a", Vector: []float32{1, 0}}}}); err != nil {
		t.Fatal(err)
	}
	sr, err := ix.Search(ctx, &embeddv1.SearchRequest{Collection: "c", Queries: []*embeddv1.Query{vecQuery([]float32{1, 0})}, K: 1})
	if err != nil || sr.Results[0].Hits[0].Id != "a" {
		t.Fatalf("search with auto on a CPU machine: %v %v", sr, err)
	}
	if code, body := get(t, ts.httpBase+"/readyz", ""); code != 200 || !strings.Contains(body, "search: cpu") {
		t.Errorf("/readyz = %d %q, want it to name the search backend", code, body)
	}
	ts.stop()
	if !strings.Contains(logs.String(), "search on the CPU: no usable GPU") || !strings.Contains(logs.String(), "backend=cpu") {
		t.Errorf("the log does not say which search backend runs and why: %s", logs.String())
	}

	cfg = testConfig()
	cfg.SearchDevice = "cuda:1"
	cfg.DataDir = t.TempDir()
	s, err := New(cfg, WithRegistry(testReg), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	err = s.Serve(context.Background(), gl, nil)
	if err == nil || !strings.Contains(err.Error(), "search_device") {
		t.Fatalf("Serve with search_device cuda:1 and no CUDA: %v, want an error naming search_device", err)
	}
}

func TestSearchFP16NeedsAGPUDevice(t *testing.T) {
	cfg := testConfig()
	cfg.SearchFP16 = true
	err := cfg.Defaults().Validate()
	if err == nil || !strings.Contains(err.Error(), "search_fp16") {
		t.Errorf("search_fp16 with search_device cpu: got %v, want an error naming search_fp16", err)
	}
	cfg.SearchDevice = "auto"
	if err := cfg.Defaults().Validate(); err != nil {
		t.Errorf("search_fp16 with search_device auto refused: %v", err)
	}
}
