package core

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/embedd/embedd/device"
	"github.com/embedd/embedd/models"
)

// The one table of defaults for what the core runs; Config.Defaults applies
// them, and documentation quotes them from here.
const (
	// DefaultMaxBatchTokens bounds one batch's rows × longest row.
	DefaultMaxBatchTokens = 8192
	// DefaultMaxBatchSize bounds one batch's rows.
	DefaultMaxBatchSize = 64
	// DefaultMaxWait is how long a batch may wait to fill while a worker is
	// free.
	DefaultMaxWait = 2 * time.Millisecond
	// DefaultQueueSize bounds the texts waiting for one model, in each of
	// the batcher's two lanes (interactive and bulk).
	DefaultQueueSize = 4096
	// DefaultBulkMaxBatchSize bounds the rows of one bulk-lane batch (batch
	// jobs): an interactive text waits behind at most one such batch. On
	// the CPU a batch of 8 runs as many texts a second as larger ones; on a
	// GPU raise it (bulk_max_batch_size).
	DefaultBulkMaxBatchSize = 8
	// DefaultMaxTextsPerRequest bounds the texts (or queries) of one request.
	DefaultMaxTextsPerRequest = 2048
	// DefaultMaxTextBytes bounds one text.
	DefaultMaxTextBytes = 64 << 10
	// DefaultMaxSearchHits bounds one search's queries × k: the hits it may
	// build before anything is scored.
	DefaultMaxSearchHits = 1 << 20
	// DefaultCacheBytes bounds the embedding cache.
	DefaultCacheBytes = 64 << 20
	// DefaultDataDir is where the server keeps collections.
	DefaultDataDir = "embedd-data"
	// DefaultSearchDevice runs search on the CPU.
	DefaultSearchDevice = "cpu"
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("2ms", "30s").
type Duration time.Duration

// UnmarshalJSON reads "2ms"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"2ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// String is the Go duration string, so logs show "30s", not nanoseconds.
func (d Duration) String() string { return time.Duration(d).String() }

// ModelConfig is one model and its pipeline: the model folder and its
// runtime (models.Config) and how its batcher packs texts.
type ModelConfig struct {
	models.Config
	// MaxBatchTokens bounds one batch's rows × longest row; default
	// DefaultMaxBatchTokens. A text longer than it still runs, alone.
	MaxBatchTokens int `json:"max_batch_tokens,omitempty"`
	// MaxBatchSize bounds one batch's rows; default DefaultMaxBatchSize.
	MaxBatchSize int `json:"max_batch_size,omitempty"`
	// MaxWait is how long a batch may wait to fill while a worker is free;
	// default DefaultMaxWait.
	MaxWait Duration `json:"max_wait,omitempty"`
	// QueueSize bounds the texts waiting for this model, in each lane;
	// default DefaultQueueSize.
	QueueSize int `json:"queue_size,omitempty"`
	// BulkMaxBatchSize bounds the rows of a batch of bulk work (EmbedBulk:
	// batch jobs), which runs only when no interactive text waits; default
	// DefaultBulkMaxBatchSize, at most max_batch_size.
	BulkMaxBatchSize int `json:"bulk_max_batch_size,omitempty"`
	// Workers is how many batches run at once; default one per device
	// (the CPU provider already uses every core inside one batch).
	Workers int `json:"workers,omitempty"`
}

// Config is what the core runs: the models and their pipelines, the
// request limits, the cache, and the collections with their search
// backend. Zero fields take the defaults of the table above (Defaults).
type Config struct {
	// ORTLib is the ONNX Runtime library; default: models.FindORTLibrary.
	ORTLib string `json:"ort_lib,omitempty"`
	// Default is the model id (or alias) used when a request names none;
	// default the first model (with no models listed, the default
	// configuration's default).
	Default string `json:"default_model,omitempty"`
	// DataDir holds the vector collections; empty opens none (Defaults
	// leaves it: the server sets DefaultDataDir, batch tools their flag).
	DataDir string `json:"data_dir,omitempty"`
	// SearchDevice picks the search backend: "cpu" (default), "cuda"
	// (CUDA device 0), "cuda:N", or "auto" (device 0 when CUDA loads and
	// starts there, else the CPU, logging why). An explicit cuda device
	// that cannot start fails Open.
	SearchDevice string `json:"search_device,omitempty"`
	// SearchFP16 stores collections on the GPU as IEEE half instead of
	// float32 (default false): half the device memory and faster scoring,
	// scores within 1e-3 of fp32 for unit-scale vectors (so ids may differ
	// from the CPU's where scores are that close); a vector component
	// beyond ±65504 fails its searches. Needs search_device "cuda",
	// "cuda:N" or "auto"; it has no effect when "auto" falls back to the
	// CPU.
	SearchFP16 bool `json:"search_fp16,omitempty"`
	// Models to load; default: models.DefaultRegistryConfig's.
	Models []ModelConfig `json:"models,omitempty"`
	// MaxTextsPerRequest bounds texts (and queries) in one request;
	// default DefaultMaxTextsPerRequest.
	MaxTextsPerRequest int `json:"max_texts_per_request,omitempty"`
	// MaxTextBytes bounds one text; default DefaultMaxTextBytes.
	MaxTextBytes int `json:"max_text_bytes,omitempty"`
	// MaxSearchHits bounds one search's queries × k, checked before any
	// work; default DefaultMaxSearchHits.
	MaxSearchHits int `json:"max_search_hits,omitempty"`
	// CacheBytes bounds the embedding cache; default DefaultCacheBytes;
	// -1 turns it off (and stays -1: Defaults is idempotent).
	CacheBytes int64 `json:"cache_bytes,omitempty"`
}

// Defaults returns c with every zero field set from the table of defaults.
func (c Config) Defaults() Config {
	c.SearchDevice = cmp.Or(c.SearchDevice, DefaultSearchDevice)
	if len(c.Models) == 0 {
		def := models.DefaultRegistryConfig()
		for _, m := range def.Models {
			c.Models = append(c.Models, ModelConfig{Config: m})
		}
		c.Default = cmp.Or(c.Default, def.Default)
	}
	if c.Default == "" && len(c.Models) > 0 {
		c.Default = c.Models[0].ID
	}
	c.Models = append([]ModelConfig(nil), c.Models...) // the caller's slice stays as it was
	for i := range c.Models {
		m := &c.Models[i]
		m.MaxBatchTokens = cmp.Or(m.MaxBatchTokens, DefaultMaxBatchTokens)
		m.MaxBatchSize = cmp.Or(m.MaxBatchSize, DefaultMaxBatchSize)
		m.MaxWait = cmp.Or(m.MaxWait, Duration(DefaultMaxWait))
		m.QueueSize = cmp.Or(m.QueueSize, DefaultQueueSize)
		m.BulkMaxBatchSize = cmp.Or(m.BulkMaxBatchSize, min(DefaultBulkMaxBatchSize, m.MaxBatchSize))
		m.Workers = cmp.Or(m.Workers, max(1, len(m.Devices)))
	}
	c.MaxTextsPerRequest = cmp.Or(c.MaxTextsPerRequest, DefaultMaxTextsPerRequest)
	c.MaxTextBytes = cmp.Or(c.MaxTextBytes, DefaultMaxTextBytes)
	c.MaxSearchHits = cmp.Or(c.MaxSearchHits, DefaultMaxSearchHits)
	if c.CacheBytes == 0 {
		c.CacheBytes = DefaultCacheBytes
	}
	return c
}

// Validate checks c after Defaults; every problem is reported, each naming
// the field, the value and the rule.
func (c Config) Validate() error {
	var p Problems
	bad, rangeInt := p.Add, p.Range
	if d, err := device.Parse(c.SearchDevice); err != nil {
		bad("search_device", strconv.Quote(c.SearchDevice), `is not one of "cpu", "cuda", "cuda:N" (N ≥ 0), "auto"`)
	} else if c.SearchFP16 && d.Kind == device.CPU {
		bad("search_fp16", "true", `needs search_device "cuda", "cuda:N" or "auto" (the CPU searches float32)`)
	}
	if err := c.Registry().Validate(); err != nil {
		p.Join(err)
	}
	for i, m := range c.Models {
		f := fmt.Sprintf("models[%d]", i)
		rangeInt(f+".max_batch_tokens", m.MaxBatchTokens, 1, 1<<20)
		rangeInt(f+".max_batch_size", m.MaxBatchSize, 1, 65536)
		if d := time.Duration(m.MaxWait); d < 0 || d > time.Second {
			bad(f+".max_wait", strconv.Quote(d.String()), "is not in [0s, 1s]")
		}
		rangeInt(f+".queue_size", m.QueueSize, 1, 1<<20)
		rangeInt(f+".bulk_max_batch_size", m.BulkMaxBatchSize, 1, m.MaxBatchSize)
		rangeInt(f+".workers", m.Workers, 1, 64)
		if m.QueueSize < c.MaxTextsPerRequest {
			bad(f+".queue_size", m.QueueSize, fmt.Sprintf("is below max_texts_per_request %d: a full-size request could never be queued", c.MaxTextsPerRequest))
		}
	}
	rangeInt("max_texts_per_request", c.MaxTextsPerRequest, 1, 1<<20)
	rangeInt("max_text_bytes", c.MaxTextBytes, 1, 64<<20)
	rangeInt("max_search_hits", c.MaxSearchHits, 1, 1<<30)
	if c.CacheBytes < -1 || c.CacheBytes == 0 || c.CacheBytes > 1<<40 {
		bad("cache_bytes", c.CacheBytes, "is not -1 (off) or in [1, 2^40]")
	}
	return p.Err()
}

// Problems collects a configuration's problems, each naming the field, the
// value and the rule; the server's configuration adds its own to the
// core's the same way. The zero value is empty.
type Problems struct {
	errs []error
}

// Add records that field's value v breaks rule.
func (p *Problems) Add(field string, v any, rule string) {
	p.errs = append(p.errs, fmt.Errorf("%s: %v %s", field, v, rule))
}

// Range records field's value v unless it is in [lo, hi].
func (p *Problems) Range(field string, v, lo, hi int) {
	if v < lo || v > hi {
		p.Add(field, v, fmt.Sprintf("is not in [%d, %d]", lo, hi))
	}
}

// Join records err (problems found elsewhere) unless it is nil.
func (p *Problems) Join(err error) {
	if err != nil {
		p.errs = append(p.errs, err)
	}
}

// Err is every problem recorded, joined, or nil.
func (p *Problems) Err() error { return errors.Join(p.errs...) }

// Registry is the model part of the configuration.
func (c Config) Registry() models.RegistryConfig {
	r := models.RegistryConfig{ORTLib: c.ORTLib, Default: c.Default}
	for _, m := range c.Models {
		r.Models = append(r.Models, m.Config)
	}
	return r
}
