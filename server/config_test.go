package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embedd/embedd/core"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "embedd.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadConfigStrict(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"unknown field", `{"grpc_adr": "x"}`, `unknown field "grpc_adr"`},
		{"unknown model field", `{"models": [{"id": "a", "path": "m", "colour": 1}]}`, `unknown field "colour"`},
		{"bad duration", `{"shutdown_grace": "soon"}`, `invalid duration "soon"`},
		{"not json", `{`, "unexpected EOF"},
		{"trailing data", `{} {}`, "trailing data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeConfig(t, c.body)
			_, err := ReadConfig(p)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v, want an error naming %s and containing %q", err, p, c.want)
			}
		})
	}
	p := writeConfig(t, `{"grpc_addr": "0.0.0.0:9000", "models": [{"id": "m", "path": "rel/model", "max_wait": "5ms", "workers": 2}], "shutdown_grace": "3s"}`)
	c, err := ReadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	c = c.Defaults()
	if c.Models[0].Path != filepath.Join(filepath.Dir(p), "rel/model") || time.Duration(c.Models[0].MaxWait) != 5*time.Millisecond ||
		c.Models[0].Workers != 2 || c.Models[0].QueueSize != 4096 || time.Duration(c.ShutdownGrace) != 3*time.Second || c.HTTPAddr != "127.0.0.1:8080" {
		t.Errorf("config read as %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestValidateNamesFieldValueAndRule(t *testing.T) {
	base := func() Config { return Config{Config: core.Config{Models: []core.ModelConfig{{}}}} }
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"grpc addr", func(c *Config) { c.GRPCAddr = "nonsense" }, `grpc_addr: "nonsense" is not host:port`},
		{"http port", func(c *Config) { c.HTTPAddr = "localhost:99999" }, `http_addr: "localhost:99999" has no valid port`},
		{"max wait", func(c *Config) { c.Models[0].MaxWait = core.Duration(2 * time.Second) }, `models[0].max_wait: "2s" is not in [0s, 1s]`},
		{"workers", func(c *Config) { c.Models[0].Workers = 100 }, "models[0].workers: 100 is not in [1, 64]"},
		{"queue below request", func(c *Config) { c.Models[0].QueueSize = 10 }, "models[0].queue_size: 10 is below max_texts_per_request 2048"},
		{"batch tokens", func(c *Config) { c.Models[0].MaxBatchTokens = 1 << 21 }, "models[0].max_batch_tokens: 2097152 is not in [1, 1048576]"},
		{"short api key", func(c *Config) { c.APIKeys = []string{"short"} }, "api_keys[0]: (5 characters) is shorter than 16 characters"},
		{"tls half", func(c *Config) { c.TLSCert = "/x/cert.pem" }, "tls_cert/tls_key"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, `log_level: "loud" is not one of debug, info, warn, error`},
		{"rate", func(c *Config) { c.RateLimit = -1 }, "rate_limit: -1 is not in [0, 1e6]"},
		{"connection age negative", func(c *Config) { c.MaxConnectionAge = core.Duration(-time.Second) }, `max_connection_age: "-1s"`},
		{"connection age too long", func(c *Config) { c.MaxConnectionAge = core.Duration(721 * time.Hour) }, `max_connection_age: "721h0m0s"`},
		{"connection grace without age", func(c *Config) { c.MaxConnectionAgeGrace = core.Duration(5 * time.Second) }, `max_connection_age_grace: "5s" is set but max_connection_age is 0`},
		{"file bytes", func(c *Config) { c.MaxFileBytes = -1 }, "max_file_bytes: -1 is not in [1, 2^40]"},
		{"bulk batch over batch", func(c *Config) { c.Models[0].MaxBatchSize, c.Models[0].BulkMaxBatchSize = 4, 5 }, "models[0].bulk_max_batch_size: 5 is not in [1, 4]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			cfg.Models[0].ID, cfg.Models[0].Path = "m", "/m"
			c.mod(&cfg)
			err := cfg.Defaults().Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{"EMBEDD_GRPC_ADDR": ":7000", "EMBEDD_API_KEYS": "0123456789abcdef,fedcba9876543210", "ORT_LIB": "/opt/ort.so"}
	c := Config{GRPCAddr: ":1"}.ApplyEnv(func(k string) string { return env[k] })
	if c.GRPCAddr != ":7000" || len(c.APIKeys) != 2 || c.ORTLib != "/opt/ort.so" {
		t.Errorf("ApplyEnv gave %+v", c)
	}
}
