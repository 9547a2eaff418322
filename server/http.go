package server

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
)

// httpHandler routes the HTTP surface and wraps it in recovery, logging,
// auth and rate limiting.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/embeddings", s.openAIEmbeddings)
	s.registerBatchRoutes(mux)
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

// httpMiddleware adds request ids, logs, metrics, panic recovery, API-key
// auth (not for /healthz and /readyz) and rate limiting.
func (s *Server) httpMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			id = newID()
		}
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("embedd: panic in HTTP handler", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				writeOpenAIError(sw, http.StatusInternalServerError, "server_error", "", "internal error (logged on the server)")
			}
			route := r.URL.Path
			if sw.code == http.StatusNotFound {
				route = "other" // bounded label values
			}
			s.metrics.requests.WithLabelValues("HTTP "+route, fmt.Sprint(sw.code)).Inc()
			s.metrics.latency.WithLabelValues("HTTP " + route).Observe(time.Since(start).Seconds())
			level := slog.LevelDebug
			if sw.code >= 500 {
				level = slog.LevelError
			}
			s.log.Log(r.Context(), level, "embedd: http", "method", r.Method, "path", r.URL.Path, "code", sw.code,
				"latency", time.Since(start), "request_id", id, "peer", r.RemoteAddr)
		}()
		if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			if len(s.cfg.APIKeys) > 0 && !s.keyOK(bearer(r.Header.Get("Authorization"))) {
				writeOpenAIError(sw, http.StatusUnauthorized, "invalid_request_error", "", `missing or wrong API key: send "Authorization: Bearer <key>"`)
				return
			}
			key := "peer:" + peerHost(r.RemoteAddr)
			if t := bearer(r.Header.Get("Authorization")); t != "" {
				key = "key:" + t
			}
			if err := s.rateLimited(key, r.URL.Path); err != nil {
				writeError(sw, err)
				return
			}
		}
		r.Body = http.MaxBytesReader(sw, r.Body, s.bodyLimit(r))
		next.ServeHTTP(sw, r)
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

type openAIEmbedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

type openAIResponse struct {
	Object string            `json:"object"`
	Data   []openAIEmbedding `json:"data"`
	Model  string            `json:"model"`
	Usage  struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

// openAIEmbeddings serves OpenAI's embeddings API. As OpenAI's embeddings
// are, vectors are L2-normalised (after cutting to dimensions).
func (s *Server) openAIEmbeddings(w http.ResponseWriter, r *http.Request) {
	var req openAIRequest
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeOpenAIError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "", fmt.Sprintf("request body is over the limit of %d bytes", tooBig.Limit))
			return
		}
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", "request body is not valid JSON: "+err.Error())
		return
	}
	texts, err := parseInput(req.Input)
	if err != nil {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "input", err.Error())
		return
	}
	format := req.EncodingFormat
	if format != "" && format != "float" && format != "base64" {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "encoding_format", fmt.Sprintf("encoding_format %q is not float or base64", format))
		return
	}
	if req.Dimensions < 0 {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "dimensions", fmt.Sprintf("dimensions %d must be positive", req.Dimensions))
		return
	}
	c := s.core.Load()
	if c == nil {
		writeError(w, core.Unavailablef("models are still loading; retry shortly"))
		return
	}
	res, err := c.Embed(r.Context(), req.Model, texts, models.Options{Normalize: models.NormalizeOn, Dimensions: req.Dimensions})
	if err != nil {
		writeError(w, err)
		return
	}
	resp := openAIResponse{Object: "list", Model: cmp.Or(req.Model, res.Model), Data: make([]openAIEmbedding, len(res.Vectors))}
	for i, v := range res.Vectors {
		var e any = v
		if format == "base64" {
			buf := make([]byte, 4*len(v))
			for j, x := range v {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(x))
			}
			e = base64.StdEncoding.EncodeToString(buf)
		}
		resp.Data[i] = openAIEmbedding{Object: "embedding", Index: i, Embedding: e}
	}
	resp.Usage.PromptTokens, resp.Usage.TotalTokens = res.Tokens, res.Tokens
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// parseInput accepts a string or an array of strings.
func parseInput(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, errors.New("input is required: a string or an array of strings")
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err == nil {
		return many, nil
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

// writeJSON writes v as a 200 JSON response.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
