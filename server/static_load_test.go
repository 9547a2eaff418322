package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/models/modelstest"
)

// BenchmarkServerLoadStatic measures the running server with the default
// static model (static-en) at 64 concurrent clients, each sending one
// sentence of 30 to 40 tokens per call, over loopback gRPC and over HTTP
// (POST /v1/embeddings, float JSON). Every sub-benchmark embeds b.N texts;
// run it with -benchtime=Nx (e.g. 20000x). It reports texts/s.
func BenchmarkServerLoadStatic(b *testing.B) {
	rc := models.DefaultRegistryConfig()
	if rc.Default != models.DefaultStaticModelID {
		b.Skipf(".cache/models/%s is missing: scripts/setup.sh trains it", models.DefaultStaticModelID)
	}
	dir := rc.Models[1].Path
	reg, err := models.OpenRegistry(models.RegistryConfig{Models: []models.Config{{ID: "a", Path: dir}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	m, err := reg.Get("a")
	if err != nil {
		b.Fatal(err)
	}
	var texts []string
	for _, s := range modelstest.Sentences(b) {
		if ids, err := m.Tokenize(nil, 0, s, models.TruncateEnd); err == nil && len(ids) >= 30 && len(ids) <= 40 {
			texts = append(texts, s)
		}
	}
	cfg := Config{Config: core.Config{Models: []core.ModelConfig{{Config: models.Config{ID: "a", Path: dir}}}}}
	cfg.CacheBytes = -1 // measure the model, not the cache
	ts := startServer(b, cfg, WithRegistry(reg))
	b.Run("grpc/concurrency=64", func(b *testing.B) { unaryLoad(b, ts, texts, 64) })
	b.Run("http/concurrency=64", func(b *testing.B) { httpLoad(b, ts, texts, 64) })
}

// httpLoad has c clients send b.N one-text POST /v1/embeddings calls
// between them, over kept-alive connections, and reports texts/s and the
// p50 and p99 latency.
func httpLoad(b *testing.B, ts *testServer, texts []string, c int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}}
	defer client.CloseIdleConnections()
	bodies := make([][]byte, len(texts))
	for i, t := range texts {
		bodies[i], _ = json.Marshal(map[string]string{"input": t, "model": "a"})
	}
	runLoad(b, c, func(i int) error {
		resp, err := client.Post(ts.httpBase+"/v1/embeddings", "application/json", bytes.NewReader(bodies[i%len(bodies)]))
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	})
}
