package main

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"slices"
	"strings"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
)

// The flags several commands share: each has one name, one meaning and one
// help text wherever it appears.

// configFlag registers --config into p.
func configFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "config", "", "server config `file` (JSON; the EMBEDD_* environment overrides it); default: the test model of scripts/setup.sh")
}

// ortLibFlag registers --ort-lib into p.
func ortLibFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "ort-lib", "", "ONNX Runtime library `path` (default: the config's, $ORT_LIB, then .cache/ort)")
}

// dataDirFlag registers --data-dir.
func dataDirFlag(fs *flag.FlagSet) *string {
	return fs.String("data-dir", "", "the collections' data `dir` (default: the config's data_dir, else $EMBEDD_DATA_DIR, else embedd-data)")
}

// parseArgs parses args into fs. ok is false when the command must stop
// with code: 0 after -h (the usage is printed), 2 for misuse.
func parseArgs(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// modelFlags are the flags every model-using command shares.
type modelFlags struct {
	config string
	model  string
	ortLib string
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	configFlag(fs, &f.config)
	fs.StringVar(&f.model, "model", "", "model `id` (default: the config's default model)")
	ortLibFlag(fs, &f.ortLib)
}

// openTokenizing opens the chosen model (by id or alias; the config's
// default without --model) for tokenizing only: no ONNX Runtime is loaded.
// The caller closes the model.
func (f *modelFlags) openTokenizing() (*models.Model, error) {
	sc, err := loadServerConfig(f.config)
	if err != nil {
		return nil, err
	}
	want := cmp.Or(f.model, sc.Default)
	for _, mc := range sc.Models {
		if mc.ID == want || slices.Contains(mc.Aliases, want) {
			return models.LoadTokenizing(mc.Config)
		}
	}
	ids := make([]string, len(sc.Models))
	for i, mc := range sc.Models {
		ids[i] = mc.ID
	}
	return nil, fmt.Errorf("model %q is not in the configuration (have %s)", want, strings.Join(ids, ", "))
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
