package server

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/openai"
)

// httpHandler routes the HTTP surface and wraps it in recovery, logging,
// auth and rate limiting.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/embeddings", s.openAIEmbeddings)
	s.registerBatchRoutes(mux)
	mux.HandleFunc("GET /v1/models", s.openAIModels)
	mux.HandleFunc("GET /v1/models/{id}", s.openAIModel)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		c := s.core.Load()
		if c == nil || s.draining.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ready\nsearch: %s\n", c.SearchBackend())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return s.httpMiddleware(mux)
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (an upload
// extends its read deadline).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unmatchedRoute is the metrics label of every request no route matches,
// so that made-up paths cannot grow the label set.
const unmatchedRoute = "unmatched"

// routeLabel is the path pattern of the route mux sends r to ("/v1/embeddings",
// "/v1/models/{id}"), or unmatchedRoute: never the raw path.
func routeLabel(mux *http.ServeMux, r *http.Request) string {
	_, pattern := mux.Handler(r)
	if pattern == "" {
		return unmatchedRoute
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path // without the method
	}
	return pattern
}

// probePaths need no API key and are not rate-limited (load balancers).
func probePath(p string) bool { return p == "/healthz" || p == "/readyz" }

// httpMiddleware adds request ids, logs, metrics, panic recovery, API-key
// auth (not for /healthz and /readyz) and rate limiting.
func (s *Server) httpMiddleware(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			id = newID()
		}
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		route := routeLabel(mux, r)
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("embedd: panic in HTTP handler", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				writeOpenAIError(sw, http.StatusInternalServerError, "server_error", "", "internal error (logged on the server)")
			}
			s.metrics.requests.WithLabelValues("HTTP "+route, fmt.Sprint(sw.code)).Inc()
			s.metrics.latency.WithLabelValues("HTTP " + route).Observe(time.Since(start).Seconds())
			level := slog.LevelDebug
			// A probe answered 503 while loading or draining is expected.
			if sw.code >= 500 && !(probePath(r.URL.Path) && sw.code == http.StatusServiceUnavailable) {
				level = slog.LevelError
			}
			s.log.Log(r.Context(), level, "embedd: http", "method", r.Method, "path", r.URL.Path, "code", sw.code,
				"latency", time.Since(start), "request_id", id, "peer", r.RemoteAddr)
		}()
		if !probePath(r.URL.Path) {
			token := bearer(r.Header.Get("Authorization"))
			if len(s.cfg.APIKeys) > 0 && !s.keyOK(token) {
				writeOpenAIError(sw, http.StatusUnauthorized, "invalid_request_error", "", `missing or wrong API key: send "Authorization: Bearer <key>"`)
				return
			}
			if err := s.rateLimited(s.rateKey([]string{token}, r.RemoteAddr), r.URL.Path); err != nil {
				writeError(sw, err)
				return
			}
		}
		r.Body = http.MaxBytesReader(sw, r.Body, s.bodyLimit(r))
		mux.ServeHTTP(sw, r)
	})
}

// openAIRequest is the body of OpenAI's POST /v1/embeddings.
type openAIRequest struct {
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model"`
	Dimensions     int             `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
	User           string          `json:"user"`
}

// openAIEmbeddings serves OpenAI's embeddings API. As OpenAI's embeddings
// are, vectors are L2-normalised (after cutting to dimensions).
func (s *Server) openAIEmbeddings(w http.ResponseWriter, r *http.Request) {
	var req openAIRequest
	if !readJSON(w, r, &req) {
		return
	}
	texts, err := parseInput(req.Input)
	if err != nil {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "input", err.Error())
		return
	}
	b64, err := openai.Base64(req.EncodingFormat)
	if err != nil {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "encoding_format", err.Error())
		return
	}
	if req.Dimensions < 0 {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "dimensions", fmt.Sprintf("dimensions %d must be positive", req.Dimensions))
		return
	}
	c, err := s.loaded()
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := c.Embed(r.Context(), req.Model, texts, models.Options{Normalize: models.NormalizeOn, Dimensions: req.Dimensions})
	if err != nil {
		writeError(w, err)
		return
	}
	body := openai.AppendEmbeddings(nil, res.Vectors, cmp.Or(req.Model, res.Model), res.Tokens, b64)
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(body, '\n'))
}

// readJSON decodes r's body into v as gRPC's codec would take a message:
// the body must be declared application/json, be valid UTF-8 (Go's decoder
// would silently replace bad bytes) and hold one JSON value and nothing
// after it. On failure it writes the error and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeOpenAIError(w, http.StatusUnsupportedMediaType, "invalid_request_error", "",
			fmt.Sprintf("Content-Type %q is not application/json", r.Header.Get("Content-Type")))
		return false
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if tooBig, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeOpenAIError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "", fmt.Sprintf("request body is over the limit of %d bytes", tooBig.Limit))
		} else {
			writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", "reading the request body: "+err.Error())
		}
		return false
	}
	if !utf8.Valid(body) {
		bad := 0
		for bad < len(body) {
			r, size := utf8.DecodeRune(body[bad:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			bad += size
		}
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", fmt.Sprintf("request body is not valid UTF-8 (byte %d)", bad))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", "request body is not valid JSON: "+err.Error())
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", fmt.Sprintf("request body has data after the JSON object (at byte %d)", dec.InputOffset()))
		return false
	}
	return true
}

// parseInput accepts a string or an array of strings; null, in either
// place, is not a text.
func parseInput(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, errors.New("input is required: a string or an array of strings")
	}
	var one *string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one == nil {
			return nil, errors.New("input is null: give a string or an array of strings")
		}
		return []string{*one}, nil
	}
	var many []*string
	if err := json.Unmarshal(raw, &many); err == nil {
		texts := make([]string, len(many))
		for i, t := range many {
			if t == nil {
				return nil, fmt.Errorf("input[%d] is null: every element must be a string", i)
			}
			texts[i] = *t
		}
		return texts, nil
	}
	return nil, errors.New("input must be a string or an array of strings (token arrays are not supported)")
}

func writeOpenAIError(w http.ResponseWriter, code int, typ, param, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	var p any
	if param != "" {
		p = param
	}
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": p, "code": nil}})
}

// openAIModelObject is OpenAI's model object (GET /v1/models/{id}).
type openAIModelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// modelObjects lists every served model as OpenAI's model objects: each
// id, then its aliases (which requests may name as well), created when
// the models loaded.
func (s *Server) modelObjects(c *core.Core) []openAIModelObject {
	var out []openAIModelObject
	for _, m := range c.Models() {
		for _, id := range append([]string{m.ID}, m.Aliases...) {
			out = append(out, openAIModelObject{ID: id, Object: "model", Created: s.loadedAt, OwnedBy: "embedd"})
		}
	}
	return out
}

// openAIModels serves OpenAI's GET /v1/models: {"object": "list", "data":
// [model objects]}.
func (s *Server) openAIModels(w http.ResponseWriter, r *http.Request) {
	c, err := s.loaded()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, struct {
		Object string              `json:"object"`
		Data   []openAIModelObject `json:"data"`
	}{"list", s.modelObjects(c)})
}

// openAIModel serves OpenAI's GET /v1/models/{id}, an id or an alias.
func (s *Server) openAIModel(w http.ResponseWriter, r *http.Request) {
	c, err := s.loaded()
	if err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	for _, m := range s.modelObjects(c) {
		if m.ID == id {
			writeJSON(w, m)
			return
		}
	}
	writeError(w, core.Errorf(core.NotFound, "model", "%q is not a model this server serves (GET /v1/models lists them)", id))
}

// writeJSON writes v as a 200 JSON response.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
