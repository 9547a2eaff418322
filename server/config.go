package server

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/embedd/embedd/core"
)

// TracingConfig turns on OpenTelemetry tracing: spans for every RPC and
// /v1/embeddings request (joining the caller's trace when it sends a W3C
// traceparent) and, inside the embedding path, for tokenization, the cache,
// the queue wait and the model run, exported over OTLP/gRPC. It is off (no
// exporter, no goroutines, no spans) unless OTLPEndpoint is set, in the
// file or by OTEL_EXPORTER_OTLP_ENDPOINT (see ApplyEnv). The exporter also
// reads the other standard OTEL_EXPORTER_OTLP_* variables (headers,
// certificate, compression, timeout, insecure); OTLPEndpoint wins over
// theirs. Buffered spans are flushed at shutdown, for at most 5s; a flush
// that fails (collector unreachable) is part of Serve's error.
type TracingConfig struct {
	// OTLPEndpoint is the collector's OTLP/gRPC address, host:port (such
	// as "otel-collector:4317"); empty turns tracing off.
	OTLPEndpoint string `json:"otlp_endpoint,omitempty"`
	// Insecure sends spans in plaintext; default false: TLS, verified
	// against the system's roots (or OTEL_EXPORTER_OTLP_CERTIFICATE),
	// unless OTEL_EXPORTER_OTLP_INSECURE=true.
	Insecure bool `json:"insecure,omitempty"`
	// SampleRatio is the share of new traces recorded, in [0, 1]; default
	// 1 when tracing is on. A call that joins a caller's trace follows the
	// caller's sampling decision instead (parent-based sampling).
	SampleRatio *float64 `json:"sample_ratio,omitempty"`
	// ServiceName is the service.name of the spans; default "embedd" when
	// tracing is on.
	ServiceName string `json:"service_name,omitempty"`
}

// On reports whether tracing is configured.
func (t TracingConfig) On() bool { return t.OTLPEndpoint != "" }

// Config is the whole server configuration. Zero fields take the defaults
// documented on them (see Defaults).
type Config struct {
	// GRPCAddr is the gRPC listen address; default 127.0.0.1:50051.
	GRPCAddr string `json:"grpc_addr,omitempty"`
	// HTTPAddr is the HTTP listen address (OpenAI endpoint, health,
	// metrics); default 127.0.0.1:8080; "off" disables HTTP.
	HTTPAddr string `json:"http_addr,omitempty"`
	// Config is the application core's part: models and their batching,
	// request limits, the cache, the data dir and the search backend. Its
	// JSON fields sit at the top level of the file, beside the server's.
	// DataDir defaults to core.DefaultDataDir.
	core.Config
	// MaxMessageBytes bounds one gRPC message or HTTP body; default 32 MiB.
	MaxMessageBytes int `json:"max_message_bytes,omitempty"`
	// MaxFileBytes bounds one file uploaded to POST /v1/files (a batch's
	// input), streamed to the data dir; default 200 MiB, OpenAI's limit.
	MaxFileBytes int64 `json:"max_file_bytes,omitempty"`
	// APIKeys, when not empty, are required as "authorization: Bearer KEY"
	// on every call except health checks.
	APIKeys []string `json:"api_keys,omitempty"`
	// TLSCert and TLSKey, both or neither, serve gRPC and HTTP over TLS.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// RateLimit is requests per second per client (API key, else peer
	// address); 0 disables. RateBurst defaults to max(1, RateLimit).
	RateLimit float64 `json:"rate_limit,omitempty"`
	RateBurst int     `json:"rate_burst,omitempty"`
	// StreamInFlight bounds the chunks of one EmbedStream processed at
	// once; default 8.
	StreamInFlight int `json:"stream_in_flight,omitempty"`
	// ShutdownGrace is how long shutdown waits for queued work; default 30s.
	ShutdownGrace core.Duration `json:"shutdown_grace,omitempty"`
	// MaxConnectionAge closes a client's gRPC connection (with a GOAWAY,
	// ±10% jitter) once it is this old, so that long-lived clients
	// re-resolve and spread onto new replicas; default 0: never.
	MaxConnectionAge core.Duration `json:"max_connection_age,omitempty"`
	// MaxConnectionAgeGrace is how long calls on such a connection may
	// still run before it is closed hard; default 0: until they end. Needs
	// max_connection_age.
	MaxConnectionAgeGrace core.Duration `json:"max_connection_age_grace,omitempty"`
	// HTTPReadTimeout bounds reading one HTTP request, body included;
	// default 60s.
	HTTPReadTimeout core.Duration `json:"http_read_timeout,omitempty"`
	// HTTPIdleTimeout closes a keep-alive HTTP connection idle this long;
	// default 120s.
	HTTPIdleTimeout core.Duration `json:"http_idle_timeout,omitempty"`
	// MaxHTTPConnections caps the open HTTP connections: one over it takes
	// the place of the connection idle longest, or is closed as soon as it
	// is accepted when none is idle; default 1024.
	MaxHTTPConnections int `json:"max_http_connections,omitempty"`
	// MaxConcurrentStreams caps the calls and streams running on one gRPC
	// connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); default 100.
	MaxConcurrentStreams int `json:"max_concurrent_streams,omitempty"`
	// MaxGRPCCalls caps the gRPC calls and streams running in total
	// (health checks excepted): one over it is refused with
	// RESOURCE_EXHAUSTED; default 1000.
	MaxGRPCCalls int `json:"max_grpc_calls,omitempty"`
	// HandshakeTimeout bounds a new gRPC connection's set-up (TLS and
	// HTTP/2 preface); default 10s.
	HandshakeTimeout core.Duration `json:"handshake_timeout,omitempty"`
	// Pprof serves /debug/pprof/ on the HTTP address.
	Pprof bool `json:"pprof,omitempty"`
	// LogLevel is debug, info, warn or error; default info.
	LogLevel string `json:"log_level,omitempty"`
	// Tracing exports OpenTelemetry spans over OTLP/gRPC; off by default
	// (see TracingConfig).
	Tracing TracingConfig `json:"tracing,omitzero"`
}

// Defaults returns c with every zero field set to its default.
func (c Config) Defaults() Config {
	c.GRPCAddr = cmp.Or(c.GRPCAddr, "127.0.0.1:50051")
	c.HTTPAddr = cmp.Or(c.HTTPAddr, "127.0.0.1:8080")
	c.Config = c.Config.Defaults()
	c.DataDir = cmp.Or(c.DataDir, core.DefaultDataDir)
	c.MaxMessageBytes = cmp.Or(c.MaxMessageBytes, 32<<20)
	c.MaxFileBytes = cmp.Or(c.MaxFileBytes, 200<<20)
	if c.RateLimit > 0 && c.RateBurst == 0 {
		c.RateBurst = max(1, int(c.RateLimit))
	}
	c.StreamInFlight = cmp.Or(c.StreamInFlight, 8)
	c.ShutdownGrace = cmp.Or(c.ShutdownGrace, core.Duration(30*time.Second))
	c.HTTPReadTimeout = cmp.Or(c.HTTPReadTimeout, core.Duration(60*time.Second))
	c.HTTPIdleTimeout = cmp.Or(c.HTTPIdleTimeout, core.Duration(120*time.Second))
	c.MaxHTTPConnections = cmp.Or(c.MaxHTTPConnections, 1024)
	c.MaxConcurrentStreams = cmp.Or(c.MaxConcurrentStreams, 100)
	c.MaxGRPCCalls = cmp.Or(c.MaxGRPCCalls, 1000)
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, core.Duration(10*time.Second))
	c.LogLevel = cmp.Or(c.LogLevel, "info")
	if c.Tracing.On() {
		if c.Tracing.SampleRatio == nil {
			one := 1.0
			c.Tracing.SampleRatio = &one
		}
		c.Tracing.ServiceName = cmp.Or(c.Tracing.ServiceName, "embedd")
	}
	return c
}

// Validate checks a configuration after Defaults; every problem is
// reported, each naming the field, the value and the rule.
func (c Config) Validate() error {
	var p core.Problems
	bad, rangeInt := p.Add, p.Range
	if err := checkAddr(c.GRPCAddr); err != nil {
		bad("grpc_addr", strconv.Quote(c.GRPCAddr), err.Error())
	}
	if c.HTTPAddr != "off" {
		if err := checkAddr(c.HTTPAddr); err != nil {
			bad("http_addr", strconv.Quote(c.HTTPAddr), err.Error()+` (or "off")`)
		}
	}
	if err := c.Config.Validate(); err != nil {
		p.Join(err)
	}
	rangeInt("max_message_bytes", c.MaxMessageBytes, 1<<10, 1<<30)
	if c.MaxFileBytes < 1 || c.MaxFileBytes > 1<<40 {
		bad("max_file_bytes", c.MaxFileBytes, "is not in [1, 2^40]")
	}
	for i, k := range c.APIKeys {
		field := fmt.Sprintf("api_keys[%d]", i)
		switch {
		case strings.ContainsFunc(k, func(r rune) bool { return r < 0x21 || r > 0x7e }):
			// A bearer token is trimmed, and a header carries no control
			// or non-ASCII bytes: such a key would never match.
			bad(field, fmt.Sprintf("(%d characters)", len(k)), "has a space, a control or a non-ASCII character: no request could ever match it")
		case len(k) < 16:
			bad(field, fmt.Sprintf("(%d characters)", len(k)), "is shorter than 16 characters")
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls_cert/tls_key", fmt.Sprintf("%q/%q", c.TLSCert, c.TLSKey), "must be given together")
	}
	for _, f := range []struct{ name, path string }{{"tls_cert", c.TLSCert}, {"tls_key", c.TLSKey}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				bad(f.name, strconv.Quote(f.path), "is not a readable file")
			}
		}
	}
	if c.RateLimit < 0 || c.RateLimit > 1e6 {
		bad("rate_limit", c.RateLimit, "is not in [0, 1e6]")
	}
	if c.RateLimit > 0 {
		rangeInt("rate_burst", c.RateBurst, 1, 1<<20)
	}
	rangeInt("stream_in_flight", c.StreamInFlight, 1, 1024)
	if d := time.Duration(c.ShutdownGrace); d <= 0 || d > time.Hour {
		bad("shutdown_grace", strconv.Quote(d.String()), "is not in (0s, 1h]")
	}
	for _, f := range []struct {
		name string
		d    core.Duration
	}{{"http_read_timeout", c.HTTPReadTimeout}, {"http_idle_timeout", c.HTTPIdleTimeout}, {"handshake_timeout", c.HandshakeTimeout}} {
		if d := time.Duration(f.d); d <= 0 || d > time.Hour {
			bad(f.name, strconv.Quote(d.String()), "is not in (0s, 1h]")
		}
	}
	rangeInt("max_http_connections", c.MaxHTTPConnections, 1, 1<<20)
	rangeInt("max_concurrent_streams", c.MaxConcurrentStreams, 1, 1<<16)
	rangeInt("max_grpc_calls", c.MaxGRPCCalls, 1, 1<<20)
	if d := time.Duration(c.MaxConnectionAge); d < 0 || d > 720*time.Hour {
		bad("max_connection_age", strconv.Quote(d.String()), "is not in [0s (never), 720h]")
	}
	if d := time.Duration(c.MaxConnectionAgeGrace); d < 0 || d > time.Hour {
		bad("max_connection_age_grace", strconv.Quote(d.String()), "is not in [0s, 1h]")
	} else if d > 0 && c.MaxConnectionAge == 0 {
		bad("max_connection_age_grace", strconv.Quote(d.String()), "is set but max_connection_age is 0 (connections are never aged)")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log_level", strconv.Quote(c.LogLevel), "is not one of debug, info, warn, error")
	}
	p.Join(errors.Join(c.Tracing.validate()...))
	return p.Err()
}

// validate checks the tracing fields, each error naming the field, the
// value and the rule.
func (t TracingConfig) validate() []error {
	var errs []error
	bad := func(field string, v any, rule string) {
		errs = append(errs, fmt.Errorf("tracing.%s: %v %s", field, v, rule))
	}
	if !t.On() {
		// Settings without an endpoint would be silently ignored.
		off := "is set but tracing.otlp_endpoint is empty (tracing is off)"
		if t.Insecure {
			bad("insecure", true, off)
		}
		if t.SampleRatio != nil {
			bad("sample_ratio", *t.SampleRatio, off)
		}
		if t.ServiceName != "" {
			bad("service_name", strconv.Quote(t.ServiceName), off)
		}
		return errs
	}
	if err := checkDialAddr(t.OTLPEndpoint); err != nil {
		bad("otlp_endpoint", strconv.Quote(t.OTLPEndpoint), err.Error())
	}
	if r := t.SampleRatio; r != nil && (math.IsNaN(*r) || *r < 0 || *r > 1) {
		bad("sample_ratio", *r, "is not in [0, 1]")
	}
	if n := t.ServiceName; n != "" && (len(n) > 255 || strings.ContainsFunc(n, func(r rune) bool { return !unicode.IsPrint(r) })) {
		bad("service_name", strconv.Quote(n), "is not 1 to 255 bytes of printable characters")
	}
	return errs
}

func checkAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil || port == "" {
		return errors.New("is not host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("has no valid port")
	}
	return nil
}

// checkDialAddr checks an address to connect to: a host and a port in
// [1, 65535].
func checkDialAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" || port == "" {
		return errors.New("is not host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("has no valid port (1 to 65535)")
	}
	return nil
}

// ReadConfig reads a JSON configuration file strictly (unknown fields are
// errors); relative model paths are taken relative to the file. It does not
// apply Defaults or Validate.
func ReadConfig(path string) (Config, error) {
	var c Config
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("embedd/server: reading config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("embedd/server: config %s: %w", path, err)
	}
	if dec.More() {
		return c, fmt.Errorf("embedd/server: config %s: trailing data after the JSON object", path)
	}
	base := filepath.Dir(path)
	if c.DataDir != "" && !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(base, c.DataDir)
	}
	for i := range c.Models {
		if p := c.Models[i].Path; p != "" && !filepath.IsAbs(p) {
			c.Models[i].Path = filepath.Join(base, p)
		}
	}
	return c, nil
}

// ApplyEnv overrides fields from EMBEDD_* environment variables:
// EMBEDD_GRPC_ADDR, EMBEDD_HTTP_ADDR, EMBEDD_DATA_DIR, EMBEDD_ORT_LIB (or ORT_LIB),
// EMBEDD_API_KEYS (comma-separated), EMBEDD_LOG_LEVEL; and from
// OpenTelemetry's OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or, when that is
// unset, OTEL_EXPORTER_OTLP_ENDPOINT, which sets tracing.otlp_endpoint (and
// so turns tracing on): host:port, or a URL whose scheme also sets
// tracing.insecure (http: true, https: false), whose port defaults to 4317
// and whose path is ignored.
func (c Config) ApplyEnv(getenv func(string) string) Config {
	if v := getenv("EMBEDD_GRPC_ADDR"); v != "" {
		c.GRPCAddr = v
	}
	if v := getenv("EMBEDD_HTTP_ADDR"); v != "" {
		c.HTTPAddr = v
	}
	if v := getenv("EMBEDD_DATA_DIR"); v != "" {
		c.DataDir = v
	}
	if v := cmp.Or(getenv("EMBEDD_ORT_LIB"), getenv("ORT_LIB")); v != "" && c.ORTLib == "" {
		c.ORTLib = v
	}
	if v := getenv("EMBEDD_API_KEYS"); v != "" {
		// "k1, k2" means k1 and k2: spaces around a key are never part of
		// it (a bearer token is trimmed), and empty entries are no keys.
		c.APIKeys = nil
		for k := range strings.SplitSeq(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				c.APIKeys = append(c.APIKeys, k)
			}
		}
	}
	if v := getenv("EMBEDD_LOG_LEVEL"); v != "" {
		c.LogLevel = v
	}
	if v := cmp.Or(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); v != "" {
		c.Tracing.OTLPEndpoint = v // as it is when it is not a URL: Validate names it
		if u, err := url.Parse(v); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
			c.Tracing.OTLPEndpoint = u.Host
			if u.Port() == "" {
				c.Tracing.OTLPEndpoint = net.JoinHostPort(u.Hostname(), "4317") // OTLP/gRPC's port
			}
			c.Tracing.Insecure = u.Scheme == "http"
		}
	}
	return c
}
