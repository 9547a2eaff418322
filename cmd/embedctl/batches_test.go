package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/server"
)

// TestBatchesSubmitWaitDownload submits a batch file through embedctl
// against a real server, waits for it and downloads its output; then get,
// list, cancel of an ended batch and a missing file.
func TestBatchesSubmitWaitDownload(t *testing.T) {
	ts := startHTTPServer(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	os.WriteFile(in, []byte(`{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"input": "hello"}}
{"custom_id": "b", "method": "POST", "url": "/v1/embeddings", "body": {"input": ""}}
`), 0o644)
	out, errs := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "errors.jsonl")
	var stdout, stderr bytes.Buffer
	code := run([]string{"batches", "submit", in, "--http", ts, "--wait", "-o", out, "--errors", errs, "--metadata", "k=v"}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("submit --wait: exit %d: %s", code, stderr.String())
	}
	var b struct {
		ID       string            `json:"id"`
		Status   string            `json:"status"`
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &b); err != nil || b.Status != "completed" || b.Metadata["k"] != "v" {
		t.Fatalf("submit printed %q (%v)", stdout.String(), err)
	}
	if !strings.Contains(stderr.String(), "2 of 2 done, 1 failed") {
		t.Errorf("no progress line on stderr: %q", stderr.String())
	}
	o, _ := os.ReadFile(out)
	e, _ := os.ReadFile(errs)
	if !strings.Contains(string(o), `"custom_id":"a"`) || strings.Count(string(o), "\n") != 1 || !strings.Contains(string(e), `"custom_id":"b"`) {
		t.Errorf("output %q, errors %q", o, e)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"batches", "get", b.ID}, 0, `"status":"completed"`},
		{[]string{"batches", "list", "--limit", "5"}, 0, b.ID},
		{[]string{"batches", "cancel", b.ID}, 1, "cannot be cancelled"},
		{[]string{"batches", "get", "batch_nope"}, 1, "No such Batch object"},
		{[]string{"batches", "submit", filepath.Join(dir, "missing.jsonl")}, 1, "no such file"},
		{[]string{"batches", "frobnicate"}, 2, "unknown subcommand"},
	} {
		stdout.Reset()
		stderr.Reset()
		code := run(append(c.args, "--http", ts), strings.NewReader(""), &stdout, &stderr)
		if code != c.code || !strings.Contains(stdout.String()+stderr.String(), c.want) {
			t.Errorf("%v: exit %d, %q %q; want exit %d with %q", c.args, code, stdout.String(), stderr.String(), c.code, c.want)
		}
	}
}

// startHTTPServer serves a real embedd server (its default models) on
// loopback until the test ends and returns its HTTP address; it skips
// without ONNX Runtime and the test model (scripts/setup.sh).
func startHTTPServer(t *testing.T) string {
	t.Helper()
	if _, err := models.FindORTLibrary(""); err != nil {
		if os.Getenv("EMBEDD_REQUIRE_ORT") != "" {
			t.Fatal(err)
		}
		t.Skipf("run scripts/setup.sh first: %v", err)
	}
	s, err := server.New(server.Config{Config: core.Config{DataDir: t.TempDir()}}, server.WithLogger(slog.New(slog.DiscardHandler)))
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
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := hl.Addr().String()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr
			}
		}
		if time.Since(start) > time.Minute {
			t.Fatal("server not ready within a minute")
		}
	}
}
