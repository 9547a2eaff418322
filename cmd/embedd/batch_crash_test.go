package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/embedd/embedd/models"
)

// httpJSON sends one request to a server and decodes its JSON answer.
func httpJSON(t *testing.T, method, url, contentType string, body io.Reader) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	return v
}

// submitBatch uploads content and creates a batch of it; it returns the
// batch id.
func submitBatch(t *testing.T, base, content string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	io.WriteString(fw, content)
	mw.WriteField("purpose", "batch")
	mw.Close()
	f := httpJSON(t, "POST", base+"/v1/files", mw.FormDataContentType(), &body)
	b := httpJSON(t, "POST", base+"/v1/batches", "application/json", strings.NewReader(
		fmt.Sprintf(`{"input_file_id": %q, "endpoint": "/v1/embeddings", "completion_window": "24h"}`, f["id"])))
	return b["id"].(string)
}

// batchOutput waits (at most three minutes) for a batch to complete and
// returns its output file.
func batchOutput(t *testing.T, base, id string) string {
	t.Helper()
	for start := time.Now(); time.Since(start) < 3*time.Minute; time.Sleep(50 * time.Millisecond) {
		b := httpJSON(t, "GET", base+"/v1/batches/"+id, "", nil)
		switch b["status"] {
		case "completed":
			resp, err := http.Get(base + "/v1/files/" + b["output_file_id"].(string) + "/content")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			return string(out)
		case "failed", "cancelled", "expired":
			t.Fatalf("batch %s ended %v", id, b)
		}
	}
	t.Fatalf("batch %s not completed within three minutes", id)
	return ""
}

// completedOf is a batch's request_counts.completed.
func completedOf(t *testing.T, base, id string) float64 {
	b := httpJSON(t, "GET", base+"/v1/batches/"+id, "", nil)
	return b["request_counts"].(map[string]any)["completed"].(float64)
}

// TestBatchResumesAfterSIGKILL kills "embedd serve" with SIGKILL twice
// while a batch runs (after its first parts are written, and again later),
// restarts it each time, and checks that the batch completes with the same
// output, byte for byte, as the same batch run without interruption.
func TestBatchResumesAfterSIGKILL(t *testing.T) {
	needFixtures(t)
	bin := buildEmbedd(t)
	var content strings.Builder
	filler := strings.Repeat("words to embed, ", 4) // ~20 tokens: the ONNX model runs the 1,500 in several seconds
	for i := range 1500 {
		fmt.Fprintf(&content, `{"custom_id": "req-%d", "method": "POST", "url": "/v1/embeddings", "body": {"model": %q, "input": "request %d: %s"}}`+"\n", i, models.DefaultModelID, i, filler)
	}

	data := t.TempDir()
	sp := startServe(t, bin, data)
	base := "http://" + sp.http
	id := submitBatch(t, base, content.String())
	for _, after := range []float64{256, 900} {
		t0 := time.Now()
		for start := time.Now(); completedOf(t, base, id) < after; time.Sleep(10 * time.Millisecond) {
			if time.Since(start) > 3*time.Minute {
				t.Fatalf("fewer than %v requests done within three minutes", after)
			}
		}
		t.Logf("saw %v after %v", completedOf(t, base, id), time.Since(t0))
		sp.cmd.Process.Signal(syscall.SIGKILL)
		sp.cmd.Wait()
		sp = startServe(t, bin, data)
		base = "http://" + sp.http
		b := httpJSON(t, "GET", base+"/v1/batches/"+id, "", nil)
		t.Logf("killed after %v requests; restarted: %v with %v", after, b["status"], b["request_counts"])
		if b["status"] == "completed" {
			t.Fatal("the batch was complete before the kill: it tested nothing")
		}
	}
	resumed := batchOutput(t, base, id)
	again := batchOutput(t, base, submitBatch(t, base, content.String()))
	if n := strings.Count(resumed, "\n"); n != 1500 {
		t.Fatalf("resumed output has %d lines, want 1500", n)
	}
	if resumed != again {
		a, b := strings.Split(resumed, "\n"), strings.Split(again, "\n")
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("line %d differs:\nresumed:       %.200s\nuninterrupted: %.200s", i+1, a[i], b[i])
			}
		}
	}
}
