package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// batchLine is one OpenAI batch request line.
func batchLine(id, body string) string {
	return fmt.Sprintf(`{"custom_id": %q, "method": "POST", "url": "/v1/embeddings", "body": %s}`, id, body) + "\n"
}

// waitBatch polls a batch until it ends (bounded: two minutes).
func waitBatch(t testing.TB, base, key, id string) map[string]any {
	t.Helper()
	for start := time.Now(); time.Since(start) < 2*time.Minute; time.Sleep(20 * time.Millisecond) {
		code, b := do(t, "GET", base+"/v1/batches/"+id, key, "", nil)
		if code != 200 {
			t.Fatalf("get batch: %d %v", code, b)
		}
		switch b["status"] {
		case "completed", "failed", "cancelled", "expired":
			return b
		}
	}
	t.Fatalf("batch %s did not end within two minutes", id)
	return nil
}

// fileText reads a file's content.
func fileText(t *testing.T, base, key, id string) string {
	t.Helper()
	code, body := get(t, base+"/v1/files/"+id+"/content", key)
	if code != 200 {
		t.Fatalf("content of %s: %d %s", id, code, body)
	}
	return body
}

// createBatch uploads content and creates a batch of it.
func createBatch(t testing.TB, base, key, content string) map[string]any {
	t.Helper()
	code, f := uploadFile(t, base, key, "batch", content)
	if code != 200 {
		t.Fatalf("upload: %d %v", code, f)
	}
	code, b := do(t, "POST", base+"/v1/batches", key, "application/json", strings.NewReader(
		fmt.Sprintf(`{"input_file_id": %q, "endpoint": "/v1/embeddings", "completion_window": "24h", "metadata": {"job": "t"}}`, f["id"])))
	if code != 200 || b["object"] != "batch" || b["status"] != "validating" || b["input_file_id"] != f["id"] {
		t.Fatalf("create batch: %d %v", code, b)
	}
	return b
}

// outputLine is one line of a batch's output or error file.
type outputLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response struct {
		StatusCode int `json:"status_code"`
		Body       struct {
			Data []struct {
				Embedding []float32 `json:"embedding"`
			} `json:"data"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		} `json:"body"`
	} `json:"response"`
	Error any `json:"error"`
}

func parseLines(t *testing.T, text string) []outputLine {
	t.Helper()
	var out []outputLine
	for l := range strings.Lines(text) {
		var o outputLine
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		out = append(out, o)
	}
	return out
}

// embeddingOf is what /v1/embeddings answers for one request body.
func embeddingOf(t *testing.T, base, key, body string) [][]float32 {
	t.Helper()
	resp, raw := post(t, base+"/v1/embeddings", key, body)
	if resp.StatusCode != 200 {
		t.Fatalf("/v1/embeddings %s: %d %s", body, resp.StatusCode, raw)
	}
	var r struct {
		Data []struct {
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	json.Unmarshal(raw, &r)
	var out [][]float32
	for _, d := range r.Data {
		out = append(out, d.Embedding)
	}
	return out
}

func TestBatchEmbeddingsLikeOpenAI(t *testing.T) {
	cfg := testConfig()
	cfg.APIKeys = []string{testKey, otherKey}
	ts := startServer(t, cfg)
	base := ts.httpBase
	bodies := map[string]string{
		"one":   `{"input": "The food was delicious and the waiter...", "model": "a"}`,
		"list":  `{"input": ["first text", "second text"], "model": "b"}`,
		"dims":  `{"input": "cut me short", "model": "text-embedding-ada-002", "dimensions": 32}`,
		"deflt": `{"input": "no model named"}`,
	}
	ids := []string{"one", "list", "bad", "dims", "deflt"}
	var content strings.Builder
	for _, id := range ids {
		body, ok := bodies[id]
		if !ok {
			body = `{"input": "", "model": "a"}` // fails at run time: an empty text
		}
		content.WriteString(batchLine(id, body))
	}
	b := createBatch(t, base, testKey, content.String())
	id := b["id"].(string)
	if code, e := do(t, "GET", base+"/v1/batches/"+id, otherKey, "", nil); code != 404 || errMessage(e) != "No such Batch object: "+id {
		t.Errorf("another key's batch: %d %v", code, e)
	}
	if code, e := do(t, "POST", base+"/v1/batches/"+id+"/cancel", otherKey, "", nil); code != 404 {
		t.Errorf("another key cancels: %d %v", code, e)
	}
	if code, e := do(t, "POST", base+"/v1/batches", otherKey, "application/json", strings.NewReader(
		fmt.Sprintf(`{"input_file_id": %q, "endpoint": "/v1/embeddings", "completion_window": "24h"}`, b["input_file_id"]))); code != 404 {
		t.Errorf("a batch of another key's file: %d %v", code, e)
	}
	done := waitBatch(t, base, testKey, id)
	counts := done["request_counts"].(map[string]any)
	if done["status"] != "completed" || counts["total"] != 5.0 || counts["completed"] != 4.0 || counts["failed"] != 1.0 ||
		done["output_file_id"] == nil || done["error_file_id"] == nil || done["in_progress_at"] == nil || done["finalizing_at"] == nil || done["completed_at"] == nil {
		t.Fatalf("finished batch: %v", done)
	}
	if md := done["metadata"].(map[string]any); md["job"] != "t" {
		t.Errorf("metadata %v", md)
	}
	out := parseLines(t, fileText(t, base, testKey, done["output_file_id"].(string)))
	var got []string
	for _, o := range out {
		got = append(got, o.CustomID)
		if o.Response.StatusCode != 200 || o.Error != nil || !strings.HasPrefix(o.ID, "batch_req_") {
			t.Errorf("output line %+v", o)
		}
		want := embeddingOf(t, base, testKey, bodies[o.CustomID])
		if len(want) != len(o.Response.Body.Data) {
			t.Fatalf("%s: %d vectors, /v1/embeddings gives %d", o.CustomID, len(o.Response.Body.Data), len(want))
		}
		for i, d := range o.Response.Body.Data {
			if !slices.Equal(d.Embedding, want[i]) {
				t.Errorf("%s[%d]: the batch's vector differs from /v1/embeddings'", o.CustomID, i)
			}
		}
	}
	if !slices.Equal(got, []string{"one", "list", "dims", "deflt"}) {
		t.Errorf("output in the order %v", got)
	}
	errs := parseLines(t, fileText(t, base, testKey, done["error_file_id"].(string)))
	if len(errs) != 1 || errs[0].CustomID != "bad" || errs[0].Response.StatusCode != 400 || errs[0].Response.Body.Error == nil {
		t.Errorf("error file %+v", errs)
	}
	if code, l := do(t, "GET", base+"/v1/batches?limit=1", testKey, "", nil); code != 200 || l["first_id"] != id || l["has_more"] != false {
		t.Errorf("list: %d %v", code, l)
	}
	if code, l := do(t, "GET", base+"/v1/batches", otherKey, "", nil); code != 200 || len(l["data"].([]any)) != 0 {
		t.Errorf("another key's list: %d %v", code, l)
	}
	if code, _ := do(t, "GET", base+"/v1/batches/"+id, "", "", nil); code != 401 {
		t.Errorf("no key: %d", code)
	}
	if code, e := do(t, "POST", base+"/v1/batches/"+id+"/cancel", testKey, "", nil); code != 409 {
		t.Errorf("cancel a completed batch: %d %v", code, e)
	}
	_, m := get(t, base+"/metrics", testKey)
	if !strings.Contains(m, `embedd_bulk_queue_depth{model="a"} 0`) {
		t.Error("/metrics has no embedd_bulk_queue_depth")
	}
	// Batch-job progress: the batch above is completed, its 5 requests
	// counted (4 completed, 1 failed), with the other batches the test made.
	for _, want := range []string{`embedd_openai_batch_requests{state="completed"} `, `embedd_openai_batch_requests{state="failed"} `, `embedd_openai_batches{status="completed"} `} {
		i := strings.Index(m, want)
		if i < 0 {
			t.Errorf("/metrics has no %s", want)
			continue
		}
		if v := strings.Fields(m[i+len(want):])[0]; v == "0" {
			t.Errorf("%s%s after a completed batch", want, v)
		}
	}
}

func TestBatchValidationFailsUpFront(t *testing.T) {
	ts := startServer(t, testConfig())
	base := ts.httpBase
	content := batchLine("x", `{"input": "ok"}`) +
		"{not json\n" +
		`{"custom_id": "m", "method": "GET", "url": "/v1/embeddings", "body": {"input": "a"}}` + "\n" +
		`{"custom_id": "u", "method": "POST", "url": "/v1/chat/completions", "body": {"input": "a"}}` + "\n" +
		batchLine("x", `{"input": "twice"}`) +
		batchLine("y", `{"input": "a", "model": "gpt-9"}`)
	b := createBatch(t, base, "", content)
	done := waitBatch(t, base, "", b["id"].(string))
	if done["status"] != "failed" || done["failed_at"] == nil || done["output_file_id"] != nil {
		t.Fatalf("batch %v", done)
	}
	var codes []string
	var lines []float64
	for _, e := range done["errors"].(map[string]any)["data"].([]any) {
		e := e.(map[string]any)
		codes, lines = append(codes, e["code"].(string)), append(lines, e["line"].(float64))
	}
	if !slices.Equal(codes, []string{"invalid_json_line", "invalid_method", "invalid_url", "duplicate_custom_id", "model_not_found"}) || !slices.Equal(lines, []float64{2, 3, 4, 5, 6}) {
		t.Errorf("errors %v at lines %v", codes, lines)
	}
	for _, c := range []struct{ body, want string }{
		{`{"input_file_id": "file-x", "endpoint": "/v1/chat/completions", "completion_window": "24h"}`, "endpoint"},
		{`{"input_file_id": "file-x", "endpoint": "/v1/embeddings", "completion_window": "1h"}`, "completion_window"},
		{`{"input_file_id": "file-x", "endpoint": "/v1/embeddings", "completion_window": "24h"}`, "No such File object: file-x"},
	} {
		code, e := do(t, "POST", base+"/v1/batches", "", "application/json", strings.NewReader(c.body))
		if code/100 != 4 || !strings.Contains(errMessage(e), c.want) {
			t.Errorf("%s: %d %v, want a 4xx naming %s", c.body, code, e, c.want)
		}
	}
}

// TestBatchCancel cancels one batch while it runs, once a part of it is
// done, and one while it waits behind it: both end "cancelled", the running
// one with an output file of what it had done (as OpenAI's does), counted
// in its request counts, the waiting one with none.
func TestBatchCancel(t *testing.T) {
	ts := startServer(t, testConfig())
	base := ts.httpBase
	var content strings.Builder
	for i := range 3000 {
		content.WriteString(batchLine(fmt.Sprint("r", i), fmt.Sprintf(`{"input": "text number %d, long enough to take a while to embed"}`, i)))
	}
	running := createBatch(t, base, "", content.String())["id"].(string)
	queued := createBatch(t, base, "", content.String())["id"].(string)
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		_, b := do(t, "GET", base+"/v1/batches/"+running, "", "", nil)
		if counts, _ := b["request_counts"].(map[string]any); b["status"] == "in_progress" && counts["completed"].(float64) > 0 {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("the batch had done nothing within a minute")
		}
	}
	// The queued one first: once the running one has stopped, the runner
	// takes the next.
	for _, c := range []struct{ id, want string }{{queued, "cancelled"}, {running, "cancelling"}} {
		code, b := do(t, "POST", base+"/v1/batches/"+c.id+"/cancel", "", "", nil)
		if code != 200 || b["status"] != c.want || b["cancelling_at"] == nil {
			t.Fatalf("cancel: %d %v, want %s", code, b, c.want)
		}
	}
	if done := waitBatch(t, base, "", queued); done["status"] != "cancelled" || done["cancelled_at"] == nil || done["output_file_id"] != nil {
		t.Fatalf("the waiting batch after cancel: %v", done)
	}
	done := waitBatch(t, base, "", running)
	out, _ := done["output_file_id"].(string)
	if done["status"] != "cancelled" || done["cancelled_at"] == nil || out == "" {
		t.Fatalf("the running batch after cancel: %v", done)
	}
	lines := strings.Split(strings.TrimSpace(fileText(t, base, "", out)), "\n")
	counts := done["request_counts"].(map[string]any)
	if n := len(lines); n == 0 || n >= 3000 || float64(n) != counts["completed"].(float64) || counts["total"].(float64) != 3000 {
		t.Fatalf("%d output lines of a cancelled batch, request counts %v", len(lines), counts)
	}
	// The complete parts, in input order (parts run four at a time, so a
	// later one may be done where an earlier one is not).
	last := -1
	for i, l := range lines {
		var o outputLine
		var n int
		if err := json.Unmarshal([]byte(l), &o); err != nil || o.Response.StatusCode != 200 || len(o.Response.Body.Data) != 1 {
			t.Fatalf("output line %d: %v %.200s", i, err, l)
		}
		if _, err := fmt.Sscanf(o.CustomID, "r%d", &n); err != nil || n <= last || n >= 3000 {
			t.Fatalf("output line %d is request %q, after r%d", i, o.CustomID, last)
		}
		last = n
	}
}
