package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"iter"
	"log/slog"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
)

// modelFlags are the flags every model-using command shares.
type modelFlags struct {
	config string
	model  string
	ortLib string
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "server config `file` (JSON; its models are used); default: the test model from scripts/setup.sh")
	fs.StringVar(&f.model, "model", "", "model `id` (default: the config's default model)")
	fs.StringVar(&f.ortLib, "ort-lib", "", "ONNX Runtime library `path` (default: ORT_LIB, then .cache/ort)")
}

// open loads the registry and picks the model; the caller closes the registry.
func (f *modelFlags) open(stderr io.Writer) (*models.Registry, *models.Model, error) {
	sc, err := loadServerConfig(f.config)
	if err != nil {
		return nil, nil, err
	}
	cfg := sc.Registry()
	if f.ortLib != "" {
		cfg.ORTLib = f.ortLib
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg, err := models.OpenRegistry(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	m, err := reg.Get(f.model)
	if err != nil {
		return nil, nil, joinClose(err, reg)
	}
	return reg, m, nil
}

// openCore opens the application core over the config's models, without
// collections, with an embedding cache of cacheBytes (-1: off); the caller
// closes it.
func (f *modelFlags) openCore(stderr io.Writer, cacheBytes int64) (*core.Core, error) {
	sc, err := loadServerConfig(f.config)
	if err != nil {
		return nil, err
	}
	cfg := sc.Config
	if f.ortLib != "" {
		cfg.ORTLib = f.ortLib
	}
	cfg.DataDir, cfg.CacheBytes = "", cacheBytes
	if cacheBytes == 0 {
		cfg.CacheBytes = -1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return core.Open(cfg, core.WithLogger(log))
}

func joinClose(err error, c interface{ Close() error }) error {
	if cerr := c.Close(); cerr != nil {
		return fmt.Errorf("%w (and closing: %v)", err, cerr)
	}
	return err
}

// maxLineBytes bounds one input line (a text); longer lines are an error.
const maxLineBytes = 16 << 20

// lines yields stdin's lines (without the newline) and their 1-based number;
// a read error, or a line over maxLineBytes, ends it with a non-nil error.
func lines(r io.Reader) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), maxLineBytes)
		for sc.Scan() {
			if !yield(sc.Text(), nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield("", fmt.Errorf("reading input: %w", err))
		}
	}
}
