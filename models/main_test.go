package models

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/embedd/embedd/models/modelstest"
)

// Shared fixtures: ONNX Runtime and the test model from scripts/setup.sh,
// opened once for the package's tests.
var (
	testRT       *Runtime
	testModel    *Model
	testModelDir string
	skipReason   string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	testModelDir = DefaultRegistryConfig().Models[0].Path
	var err error
	if testRT, err = OpenRuntime(""); err == nil {
		testModel, err = Load(testRT, Config{ID: DefaultModelID, Path: testModelDir}, SessionConfig{})
	}
	skipReason = modelstest.Missing(err)
	return modelstest.Finish(m.Run(), testModel, testRT)
}

// needModel skips t when the fixtures are missing (never in CI, which sets
// EMBEDD_REQUIRE_ORT) and returns the shared model.
func needModel(t testing.TB) *Model {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	return testModel
}

// copyModelDir makes a writable copy of the test model folder (model.onnx
// linked, not copied) for tests that break or change a file.
func copyModelDir(t *testing.T) string {
	t.Helper()
	needModel(t)
	dst := t.TempDir()
	err := filepath.WalkDir(testModelDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(testModelDir, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Name() == "model.onnx":
			return os.Symlink(p, target)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// embedded is what embed returns.
type embedded struct {
	Vectors [][]float32
	Tokens  int
}

// embed runs texts through m as one batch, the way the core's pipeline
// runs a batch: Tokenize, Forward, Finish. Batching itself is the core's
// and is tested there.
func embed(m *Model, texts []string, o Options) (embedded, error) {
	if err := m.CheckOptions(o); err != nil {
		return embedded{}, err
	}
	var res embedded
	seqs := make([][]int32, len(texts))
	for i, t := range texts {
		ids, err := m.Tokenize(nil, i, t, o.Truncate)
		if err != nil {
			return embedded{}, err
		}
		seqs[i], res.Tokens = ids, res.Tokens+len(ids)
	}
	res.Vectors = make([][]float32, len(texts))
	for i := range res.Vectors {
		res.Vectors[i] = make([]float32, m.Info().Dim)
	}
	if err := m.Forward(seqs, res.Vectors); err != nil {
		return embedded{}, err
	}
	for i, v := range res.Vectors {
		res.Vectors[i] = m.Finish(v, o)
	}
	return res, nil
}
