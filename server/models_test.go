package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
)

// Issue 12.10: GET /v1/models and /v1/models/{id} answer as OpenAI's do,
// aliases listed as models of their own.
func TestOpenAIModels(t *testing.T) {
	dir := models.DefaultRegistryConfig().Models[0].Path
	cfg := Config{Config: core.Config{Models: []core.ModelConfig{
		{Config: models.Config{ID: "a", Path: dir, Aliases: []string{"text-embedding-ada-002"}}},
		{Config: models.Config{ID: "b", Path: dir}},
	}}}
	ts := startServer(t, cfg)
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	code, body := get(t, ts.httpBase+"/v1/models", "")
	var list struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || list.Object != "list" {
		t.Fatalf("GET /v1/models: %d %s %v", code, body, err)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
		if m.Object != "model" || m.OwnedBy != "embedd" || m.Created < 1.7e9 {
			t.Errorf("model object %+v", m)
		}
	}
	if strings.Join(ids, ",") != "a,text-embedding-ada-002,b" {
		t.Errorf("ids %v, want a, its alias, b", ids)
	}
	for _, id := range []string{"a", "text-embedding-ada-002", "b"} {
		code, body := get(t, ts.httpBase+"/v1/models/"+id, "")
		var m model
		if err := json.Unmarshal([]byte(body), &m); code != 200 || err != nil || m.ID != id || m.Object != "model" {
			t.Errorf("GET /v1/models/%s: %d %s", id, code, body)
		}
	}
	code, body = get(t, ts.httpBase+"/v1/models/gpt-9", "")
	if code != 404 || !strings.Contains(body, `"type":"invalid_request_error"`) || !strings.Contains(body, `model: \"gpt-9\" is not a model this server serves`) {
		t.Errorf("GET /v1/models/gpt-9: %d %s", code, body)
	}
}

// Issue 12.7: a /readyz probe answered 503 while the models load is
// expected: it is logged below ERROR.
func TestReadyzWhileLoadingIsNoError(t *testing.T) {
	var logs strings.Builder
	s, err := New(testConfig(), WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	h := s.httpHandler()
	for _, path := range []string{"/readyz", "/v1/models"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s while loading: %d, want 503", path, rec.Code)
		}
	}
	levels := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var r struct{ Level, Path string }
		json.Unmarshal([]byte(l), &r)
		levels[r.Path] = r.Level
	}
	if levels["/readyz"] != "DEBUG" || levels["/v1/models"] != "ERROR" {
		t.Errorf("log levels %v: want /readyz's 503 at DEBUG, another route's 503 at ERROR", levels)
	}
}
