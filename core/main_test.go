package core

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/embedd/embedd/models"
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
	if err != nil {
		if os.Getenv("EMBEDD_REQUIRE_ORT") != "" {
			fmt.Fprintf(os.Stderr, "EMBEDD_REQUIRE_ORT is set and the fixtures are missing: %v\n", err)
			return 1
		}
		skipReason = fmt.Sprintf("ONNX Runtime or the test model is missing (run scripts/setup.sh): %v", err)
	}
	code := m.Run()
	if err := testReg.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left after the tests:", err)
			code = 1
		}
	}
	return code
}

// open opens a Core over the shared registry with cfg (its model the test
// model unless cfg names others) and closes it when t ends.
func open(t testing.TB, cfg Config) *Core {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if len(cfg.Models) == 0 {
		cfg.Models = []ModelConfig{{Config: models.Config{ID: models.DefaultModelID, Path: "unused: WithRegistry"}}}
	}
	c, err := Open(cfg, WithRegistry(testReg), WithLogger(slog.New(slog.DiscardHandler)))
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
