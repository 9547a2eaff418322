package server

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

const otherKey = "other-key-0123456789"

// uploadFile sends content to POST /v1/files as OpenAI's Node SDK does:
// the file part first, then purpose.
func uploadFile(t testing.TB, base, key, purpose, content string) (int, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "requests.jsonl")
	io.WriteString(fw, content)
	if purpose != "" {
		mw.WriteField("purpose", purpose)
	}
	mw.Close()
	return do(t, http.MethodPost, base+"/v1/files", key, mw.FormDataContentType(), &body)
}

// do sends one request and decodes a JSON answer.
func do(t testing.TB, method, url, key, contentType string, body io.Reader) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %q", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode, v
}

// errMessage is an OpenAI error body's message.
func errMessage(v map[string]any) string {
	e, _ := v["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func TestFilesAPIWithIsolation(t *testing.T) {
	cfg := testConfig()
	cfg.APIKeys = []string{testKey, otherKey}
	cfg.MaxFileBytes = 1000
	ts := startServer(t, cfg)
	base := ts.httpBase
	content := `{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}` + "\n"
	code, f := uploadFile(t, base, testKey, "batch", content)
	id, _ := f["id"].(string)
	if code != 200 || !strings.HasPrefix(id, "file-") || f["object"] != "file" || f["bytes"] != float64(len(content)) ||
		f["filename"] != "requests.jsonl" || f["purpose"] != "batch" || f["created_at"] == nil {
		t.Fatalf("upload: %d %v", code, f)
	}
	if code, g := do(t, "GET", base+"/v1/files/"+id, testKey, "", nil); code != 200 || g["id"] != id {
		t.Errorf("get: %d %v", code, g)
	}
	req, _ := http.NewRequest("GET", base+"/v1/files/"+id+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != content {
		t.Errorf("content: %d %q", resp.StatusCode, got)
	}
	if code, l := do(t, "GET", base+"/v1/files?purpose=batch&limit=5", testKey, "", nil); code != 200 || l["object"] != "list" || len(l["data"].([]any)) != 1 || l["first_id"] != id || l["has_more"] != false {
		t.Errorf("list: %d %v", code, l)
	}

	// Another key sees none of it: its list is empty, the id is unknown.
	if code, l := do(t, "GET", base+"/v1/files", otherKey, "", nil); code != 200 || len(l["data"].([]any)) != 0 {
		t.Errorf("other key's list: %d %v", code, l)
	}
	for _, c := range []struct{ method, path string }{{"GET", ""}, {"GET", "/content"}, {"DELETE", ""}} {
		if code, e := do(t, c.method, base+"/v1/files/"+id+c.path, otherKey, "", nil); code != 404 || errMessage(e) != "No such File object: "+id {
			t.Errorf("other key %s %s: %d %v, want 404", c.method, c.path, code, e)
		}
	}
	// Every route needs a key.
	for _, c := range []struct{ method, path string }{{"GET", "/v1/files"}, {"GET", "/v1/files/" + id}, {"POST", "/v1/files"}, {"DELETE", "/v1/files/" + id}} {
		if code, _ := do(t, c.method, base+c.path, "", "", nil); code != 401 {
			t.Errorf("%s %s without a key: %d, want 401", c.method, c.path, code)
		}
	}

	// Refusals: over max_file_bytes, a purpose other than batch, no file.
	if code, e := uploadFile(t, base, testKey, "batch", strings.Repeat("x", 1001)); code != 413 || !strings.Contains(errMessage(e), "limit of 1000 bytes") {
		t.Errorf("too large: %d %v", code, e)
	}
	if code, e := uploadFile(t, base, testKey, "fine-tune", content); code != 400 || !strings.Contains(errMessage(e), "purpose=batch") {
		t.Errorf("purpose: %d %v", code, e)
	}
	if code, e := do(t, "POST", base+"/v1/files", testKey, "application/json", strings.NewReader("{}")); code != 400 || !strings.Contains(errMessage(e), "multipart/form-data") {
		t.Errorf("not multipart: %d %v", code, e)
	}

	if code, d := do(t, "DELETE", base+"/v1/files/"+id, testKey, "", nil); code != 200 || d["deleted"] != true || d["id"] != id {
		t.Errorf("delete: %d %v", code, d)
	}
	if code, _ := do(t, "GET", base+"/v1/files/"+id, testKey, "", nil); code != 404 {
		t.Errorf("get after delete: %d", code)
	}
}

// TestUploadStreamsToDisk uploads 96 MiB through a pipe while sampling
// the heap: the server never holds the file (its heap grows by far less
// than the file), and the stored size is right.
func TestUploadStreamsToDisk(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFileBytes = 128 << 20
	ts := startServer(t, cfg)
	const size = 96 << 20
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, _ := mw.CreateFormFile("file", "big.jsonl")
		line := []byte(strings.Repeat("x", 1023) + "\n")
		for range size / len(line) {
			if _, err := fw.Write(line); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		mw.WriteField("purpose", "batch")
		pw.CloseWithError(mw.Close())
	}()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := before.HeapAlloc
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}
	}()
	code, f := do(t, http.MethodPost, ts.httpBase+"/v1/files", "", mw.FormDataContentType(), pr)
	close(done)
	<-sampled
	if code != 200 || f["bytes"] != float64(size) {
		t.Fatalf("upload: %d %v", code, f)
	}
	grew := int64(peak) - int64(before.HeapAlloc)
	t.Logf("heap growth during the upload: %.1f MiB", float64(grew)/(1<<20))
	if grew > 32<<20 {
		t.Errorf("the heap grew by %d MiB during a %d MiB upload: the file was held in memory", grew>>20, size>>20)
	}
}
