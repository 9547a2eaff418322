package core

import (
	"log/slog"
	"os"
	"testing"

	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/models/modelstest"
)

// The shared fixture: the test model of scripts/setup.sh in a registry
// opened once; each test opens its own Core over it (WithRegistry).
var (
	testReg    *models.Registry
	skipReason string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	testReg, err = models.OpenRegistry(models.DefaultRegistryConfig(), slog.New(slog.DiscardHandler))
	skipReason = modelstest.Missing(err)
	return modelstest.Finish(m.Run(), testReg)
}

// open opens a Core over the shared registry (or the one opts give) with
// cfg (its model the test model unless cfg names others) and closes it
// when t ends.
func open(t testing.TB, cfg Config, opts ...Option) *Core {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if len(cfg.Models) == 0 {
		cfg.Models = []ModelConfig{{Config: models.Config{ID: models.DefaultModelID, Path: "unused: WithRegistry"}}}
	}
	c, err := Open(cfg, append([]Option{WithRegistry(testReg), WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}
