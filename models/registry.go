package models

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/embedd/embedd/device"
)

// ErrUnknownModel is wrapped by Registry.Get's error for an id it lacks.
var ErrUnknownModel = errors.New("unknown model")

// RegistryConfig lists the models to load and where ONNX Runtime is.
type RegistryConfig struct {
	// ORTLib is the ONNX Runtime library; empty means FindORTLibrary's search.
	ORTLib string `json:"ort_lib,omitempty"`
	// Default is the id used when a request names no model; empty means the
	// first model.
	Default string `json:"default,omitempty"`
	// Models are loaded in order and closed in reverse.
	Models []Config `json:"models"`
}

// DefaultModelID is the id of the random-weight transformer embedd serves
// with no configuration, for speed figures: the test model scripts/setup.sh
// generates (all-MiniLM-L6-v2's shape, random weights) in .cache/models/.
const DefaultModelID = "minilm-l6-random"

// DefaultStaticModelID is the id of the static embedding model
// scripts/setup.sh trains into .cache/models/static-en
// (scripts/train_static.py): with no configuration it is the default model,
// the one whose answers mean something.
const DefaultStaticModelID = "static-en"

// DefaultRegistryConfig is the configuration used with no config file: the
// model folder in the EMBEDD_MODEL_DIR environment variable, else
// .cache/models/minilm-l6-random in the working directory or a parent of it;
// then, where .cache/models/static-en is found the same way, that static
// model as the default.
func DefaultRegistryConfig() RegistryConfig {
	dir := os.Getenv("EMBEDD_MODEL_DIR")
	if dir == "" {
		dir = findUp(filepath.Join(".cache", "models", DefaultModelID))
	}
	cfg := RegistryConfig{Models: []Config{{ID: DefaultModelID, Path: dir}}}
	if static := findUp(filepath.Join(".cache", "models", DefaultStaticModelID)); isFile(filepath.Join(static, "modules.json")) {
		cfg.Default = DefaultStaticModelID
		cfg.Models = append(cfg.Models, Config{ID: DefaultStaticModelID, Path: static})
	}
	return cfg
}

// findUp returns rel under the working directory or the nearest parent of it
// where rel exists, else rel itself.
func findUp(rel string) string {
	wd, err := os.Getwd()
	if err != nil {
		return rel
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if filepath.Dir(d) == d {
			return rel
		}
	}
}

var modelIDPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,128}$`)

// Validate checks every field; the error names the field, the value and the
// rule, all problems joined.
func (c RegistryConfig) Validate() error {
	var errs []error
	bad := func(field string, v any, rule string) {
		errs = append(errs, fmt.Errorf("%s: %v %s", field, v, rule))
	}
	if len(c.Models) == 0 {
		bad("models", "[]", "must list at least one model")
	}
	seen := map[string]bool{}
	for i, m := range c.Models {
		f := fmt.Sprintf("models[%d]", i)
		if !modelIDPattern.MatchString(m.ID) {
			bad(f+".id", fmt.Sprintf("%q", m.ID), "does not match [a-zA-Z0-9._-]{1,128}")
		} else if seen[m.ID] {
			bad(f+".id", fmt.Sprintf("%q", m.ID), "is used by an earlier model")
		}
		seen[m.ID] = true
		for j, a := range m.Aliases {
			if !modelIDPattern.MatchString(a) {
				bad(fmt.Sprintf("%s.aliases[%d]", f, j), fmt.Sprintf("%q", a), "does not match [a-zA-Z0-9._-]{1,128}")
			} else if seen[a] {
				bad(fmt.Sprintf("%s.aliases[%d]", f, j), fmt.Sprintf("%q", a), "is already the id or alias of a model")
			}
			seen[a] = true
		}
		if m.Path == "" {
			bad(f+".path", `""`, "must name a model folder")
		}
		if _, err := device.Parse(m.Device); err != nil {
			bad(f+".device", fmt.Sprintf("%q", m.Device), "is not one of cpu, cuda, cuda:N, auto")
		}
		if len(m.Devices) > 0 && m.Device != "" {
			bad(f+".devices", fmt.Sprintf("%q", m.Devices), "cannot be combined with device")
		}
		for j, d := range m.Devices {
			if _, err := device.Parse(d); err != nil {
				bad(fmt.Sprintf("%s.devices[%d]", f, j), fmt.Sprintf("%q", d), "is not one of cpu, cuda, cuda:N, auto")
			}
		}
		if m.Pooling != "" {
			if _, err := ParsePooling(m.Pooling); err != nil {
				bad(f+".pooling", fmt.Sprintf("%q", m.Pooling), "is not one of mean, cls, lasttoken")
			}
		}
		checkRange := func(name string, v, lo, hi int) {
			if v != 0 && (v < lo || v > hi) {
				bad(f+"."+name, v, fmt.Sprintf("is not in [%d, %d]", lo, hi))
			}
		}
		checkRange("intra_op_threads", m.IntraOpThreads, 1, 1024)
		checkRange("inter_op_threads", m.InterOpThreads, 1, 1024)
		checkRange("max_length", m.MaxLength, 2, 1<<16)
		if m.GPUMemLimit < 0 {
			bad(f+".gpu_mem_limit", m.GPUMemLimit, "is negative")
		}
	}
	if c.Default != "" && !seen[c.Default] {
		bad("default", fmt.Sprintf("%q", c.Default), "is not the id of a listed model")
	}
	return errors.Join(errs...)
}

// Registry holds the loaded models by id. It is safe for concurrent use.
type Registry struct {
	rt     *Runtime
	models []*Model // in load order; immutable after OpenRegistry
	byID   map[string]*Model
	def    string
}

// OpenRegistry validates cfg, loads ONNX Runtime (only when some model is
// not a static embedding model) and every model. On error it closes
// whatever it had opened. The caller owns the Registry and must Close it.
func OpenRegistry(cfg RegistryConfig, log *slog.Logger) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("embedd/models: config: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	var rt *Runtime
	for _, mc := range cfg.Models {
		_, static, err := staticFolder(mc.Path)
		if err != nil {
			return nil, fmt.Errorf("embedd/models: model %q: %w", mc.ID, err)
		}
		if !static {
			if rt, err = OpenRuntime(cfg.ORTLib); err != nil {
				return nil, err
			}
			break
		}
	}
	r := &Registry{rt: rt, byID: map[string]*Model{}, def: cmp.Or(cfg.Default, cfg.Models[0].ID)}
	for _, mc := range cfg.Models {
		m, err := Load(rt, mc, SessionConfig{Logger: log})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("embedd/models: model %q: %w", mc.ID, err), r.Close())
		}
		r.models = append(r.models, m)
		r.byID[mc.ID] = m
		for _, a := range mc.Aliases {
			r.byID[a] = m
		}
		inf := m.Info()
		attrs := []any{"id", inf.ID, "path", inf.Path, "dim", inf.Dim,
			"max_length", inf.MaxLength, "pooling", string(inf.Pooling), "normalize", inf.Normalize,
			"kind", inf.Kind, "devices", fmt.Sprint(inf.Devices)}
		if inf.Kind == KindONNX {
			attrs = append(attrs, "onnxruntime", rt.Version())
		}
		log.Info("embedd: model loaded", attrs...)
	}
	return r, nil
}

// Get returns the model with id or alias id, or the default model for "".
func (r *Registry) Get(id string) (*Model, error) {
	if id == "" {
		id = r.def
	}
	if m, ok := r.byID[id]; ok {
		return m, nil
	}
	ids := make([]string, 0, len(r.models))
	for _, m := range r.models {
		ids = append(ids, m.info.ID)
	}
	return nil, fmt.Errorf("embedd/models: model %q is not loaded (have %s): %w", id, strings.Join(ids, ", "), ErrUnknownModel)
}

// Models describes every loaded model, sorted by id.
func (r *Registry) Models() []Info {
	out := make([]Info, 0, len(r.models))
	for _, m := range r.models {
		out = append(out, m.Info())
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// DefaultID is the id Get uses for "".
func (r *Registry) DefaultID() string { return r.def }

// Close closes every model in reverse load order, then ONNX Runtime; errors
// are joined. It is nil-safe.
func (r *Registry) Close() error {
	if r == nil {
		return nil
	}
	var errs []error
	for i := len(r.models) - 1; i >= 0; i-- {
		errs = append(errs, r.models[i].Close())
	}
	r.models = nil
	errs = append(errs, r.rt.Close())
	return errors.Join(errs...)
}
