package core

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/embedd/embedd/core/batch"
	"github.com/embedd/embedd/core/cache"
	"github.com/embedd/embedd/device"
	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/index/gpusearch"
	"github.com/embedd/embedd/models"
)

// Core is embedd's application core. Open it with Open, Close it when no
// call runs any more. It is safe for concurrent use.
type Core struct {
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer // nil: tracing off
	cache  *cache.Cache

	reg    *models.Registry
	ownReg bool                 // Close closes reg
	pipes  map[string]*pipeline // by model id; immutable after Open

	cols         *index.Manager // nil without a data dir
	searchName   string         // the backend that runs ("cpu", "cuda:0")
	closeBackend func() error
}

// pipeline is one model with its batcher.
type pipeline struct {
	model   *models.Model
	batcher *batch.Batcher
}

// options are Open's settings.
type options struct {
	reg     *models.Registry
	log     *slog.Logger
	tracer  trace.Tracer
	observe func(model string, st batch.Stats)
}

// Option changes how Open builds a Core.
type Option func(*options)

// WithRegistry runs the models of an open registry instead of loading the
// config's; the caller keeps ownership and closes it after Close.
func WithRegistry(r *models.Registry) Option { return func(o *options) { o.reg = r } }

// WithLogger sets the logger; default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithTracer records the spans of the embedding path ("embed" with
// "tokenize", "cache", "queue_wait" and "inference" under it) with t;
// default none.
func WithTracer(t trace.Tracer) Option { return func(o *options) { o.tracer = t } }

// WithBatchObserver calls f after every model batch (from the batcher's
// worker), for metrics; default none.
func WithBatchObserver(f func(model string, st batch.Stats)) Option {
	return func(o *options) { o.observe = f }
}

// Open applies cfg's defaults, validates it, opens the registry (unless
// given), starts a batcher per model and, when cfg.DataDir is set, picks
// the search backend and opens the collections. On error it closes what it
// opened. The caller owns the Core and must Close it.
func Open(cfg Config, opts ...Option) (_ *Core, err error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("embedd/core: config: %w", err)
	}
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	c := &Core{cfg: cfg, log: o.log, tracer: o.tracer, cache: cache.New(max(cfg.CacheBytes, 0)), pipes: map[string]*pipeline{}, reg: o.reg}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	if c.reg == nil {
		if c.reg, err = models.OpenRegistry(cfg.Registry(), c.log); err != nil {
			return nil, err
		}
		c.ownReg = true
	}
	for _, mc := range cfg.Models {
		m, err := c.reg.Get(mc.ID)
		if err != nil {
			return nil, err
		}
		var observe func(batch.Stats)
		if o.observe != nil {
			id := mc.ID
			observe = func(st batch.Stats) { o.observe(id, st) }
		}
		b, err := batch.New(m, batch.Config{
			Dim: m.Info().Dim, MaxBatchTokens: mc.MaxBatchTokens, MaxBatchSize: mc.MaxBatchSize,
			MaxWait: time.Duration(mc.MaxWait), QueueSize: mc.QueueSize, Workers: mc.Workers, Observe: observe,
			BulkMaxBatchSize: mc.BulkMaxBatchSize,
		})
		if err != nil {
			return nil, err
		}
		c.pipes[mc.ID] = &pipeline{model: m, batcher: b}
	}
	if cfg.DataDir == "" {
		return c, nil
	}
	dev, _ := device.Parse(cfg.SearchDevice) // Validate has checked it
	backend, closeBackend, err := gpusearch.Select(dev, c.log, gpusearch.WithFP16(cfg.SearchFP16))
	if err != nil {
		return nil, fmt.Errorf("embedd/core: search_device: %w", err)
	}
	c.closeBackend, c.searchName = closeBackend, backend.Name()
	if c.cols, err = index.OpenManager(cfg.DataDir, index.WithLogger(c.log), index.WithBackend(backend)); err != nil {
		return nil, fmt.Errorf("embedd/core: data_dir: %w", err)
	}
	return c, nil
}

// Config is the configuration the Core runs, defaults applied.
func (c *Core) Config() Config { return c.cfg }

// SearchBackend names the search backend that runs ("cpu", "cuda:0"), or
// "" without collections.
func (c *Core) SearchBackend() string { return c.searchName }

// CacheStats reports the embedding cache.
func (c *Core) CacheStats() cache.Stats { return c.cache.Stats() }

// ModelInfo describes a served model.
type ModelInfo struct {
	models.Info
	// Aliases are the other names requests may use.
	Aliases []string
	// Default is whether requests naming no model get it.
	Default bool
}

// Models describes every served model, sorted by id.
func (c *Core) Models() []ModelInfo {
	out := make([]ModelInfo, 0, len(c.pipes))
	for _, inf := range c.reg.Models() {
		if c.pipes[inf.ID] == nil {
			continue // in a given registry, but not configured here
		}
		mi := ModelInfo{Info: inf}
		for _, mc := range c.cfg.Models {
			if mc.ID == inf.ID {
				mi.Aliases = slices.Clone(mc.Aliases)
				mi.Default = c.cfg.Default == mc.ID || slices.Contains(mc.Aliases, c.cfg.Default)
			}
		}
		out = append(out, mi)
	}
	return out
}

// QueueStats is one model's queue: texts waiting (interactive, and in the
// bulk lane of batch jobs), and texts of ended requests dropped before
// inference (a counter).
type QueueStats struct {
	Depth     int
	BulkDepth int
	Dropped   uint64
}

// Queue reports model id's queue; ok is false for an unknown id.
func (c *Core) Queue(id string) (_ QueueStats, ok bool) {
	p, ok := c.pipes[id]
	if !ok {
		return QueueStats{}, false
	}
	return QueueStats{Depth: p.batcher.QueueDepth(), BulkDepth: p.batcher.BulkQueueDepth(), Dropped: p.batcher.Dropped()}, true
}

// pipeline finds the pipeline of model id (or alias; "" is the default).
func (c *Core) pipeline(id string) (*pipeline, error) {
	m, err := c.reg.Get(cmp.Or(id, c.cfg.Default))
	if err != nil {
		return nil, &Error{Kind: NotFound, Field: "model", Msg: err.Error(), Err: err}
	}
	p := c.pipes[m.Info().ID]
	if p == nil { // a given registry's model that the config does not list
		return nil, Errorf(NotFound, "model", "model %q is not served here", id)
	}
	return p, nil
}

// Close drains the batchers (queued work finishes), then closes the
// collections, the search backend and, unless given, the registry; errors
// are joined. Calls still running get Unavailable errors.
func (c *Core) Close() error {
	for _, p := range c.pipes {
		p.batcher.Close()
	}
	var errs []error
	if c.cols != nil {
		errs = append(errs, c.cols.Close())
	}
	if c.closeBackend != nil {
		errs = append(errs, c.closeBackend())
	}
	if c.ownReg {
		errs = append(errs, c.reg.Close())
	}
	return errors.Join(errs...)
}
