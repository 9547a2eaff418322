package models

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/embedd/embedd/device"
	"github.com/embedd/embedd/models/modelstest"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRegistryConfigValidate(t *testing.T) {
	one := func(c Config) RegistryConfig { return RegistryConfig{Models: []Config{c}} }
	cases := []struct {
		name string
		cfg  RegistryConfig
		want string
	}{
		{"no models", RegistryConfig{}, "models: [] must list at least one model"},
		{"bad id", one(Config{ID: "a b", Path: "m"}), `models[0].id: "a b" does not match`},
		{"duplicate id", RegistryConfig{Models: []Config{{ID: "a", Path: "m"}, {ID: "a", Path: "n"}}}, `models[1].id: "a" is used by an earlier model`},
		{"no path", one(Config{ID: "a"}), `models[0].path: "" must name a model folder`},
		{"bad device", one(Config{ID: "a", Path: "m", Device: "tpu"}), `models[0].device: "tpu" is not one of cpu, cuda, cuda:N, auto`},
		{"bad default", RegistryConfig{Default: "zz", Models: []Config{{ID: "a", Path: "m"}}}, `default: "zz" is not the id of a listed model`},
		{"alias clash", RegistryConfig{Models: []Config{{ID: "a", Path: "m"}, {ID: "b", Path: "m", Aliases: []string{"a"}}}}, `models[1].aliases[0]: "a" is already the id or alias of a model`},
		{"bad pooling", one(Config{ID: "a", Path: "m", Pooling: "max"}), `models[0].pooling: "max" is not one of mean, cls, lasttoken`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	if err := one(Config{ID: "a", Path: "m", Device: "cuda:1"}).Validate(); err != nil {
		t.Errorf("a valid config was refused: %v", err)
	}
}

func TestRegistryLoadsSeveralModels(t *testing.T) {
	needModel(t)
	cls := copyModelDir(t)
	writeFile(t, filepath.Join(cls, "1_Pooling", "config.json"), `{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}`)
	var logs bytes.Buffer
	reg, err := OpenRegistry(RegistryConfig{Default: "mean", Models: []Config{
		{ID: "mean", Path: testModelDir, Aliases: []string{"text-embedding-3-small"}},
		{ID: "cls", Path: cls, MaxLength: 128},
	}}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	infos := reg.Models()
	if len(infos) != 2 || infos[0].ID != "cls" || infos[1].ID != "mean" {
		t.Fatalf("Models() = %+v, want cls and mean sorted by id", infos)
	}
	if infos[0].Pooling != PoolCLS || infos[0].MaxLength != 128 || infos[1].Pooling != PoolMean || infos[1].MaxLength != 256 {
		t.Errorf("pooling/max length not taken from folder and config: %+v", infos)
	}
	if !infos[1].Normalize || infos[1].Dim != 384 || infos[1].Device.Kind != device.CPU {
		t.Errorf("mean model info %+v: want normalize (modules.json), dim 384, cpu", infos[1])
	}
	if !strings.Contains(logs.String(), "model loaded") {
		t.Errorf("no load log line: %s", logs.String())
	}
	def, err := reg.Get("")
	if err != nil || def.Info().ID != "mean" {
		t.Fatalf("Get(\"\") = %v, %v; want the default model", def, err)
	}
	if al, err := reg.Get("text-embedding-3-small"); err != nil || al != def {
		t.Errorf("alias: got %v, %v; want the mean model", al, err)
	}
	_, err = reg.Get("nope")
	if !errors.Is(err, ErrUnknownModel) || !strings.Contains(err.Error(), `"nope" is not loaded (have mean, cls)`) {
		t.Errorf("unknown model: got %v", err)
	}
	// CLS pooling gives the first token's state: a text's vector then
	// differs from mean pooling's for the same text.
	c, _ := reg.Get("cls")
	a, err := embed(c, []string{"the same text"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := embed(def, []string{"the same text"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cos := modelstest.Cosine(a.Vectors[0], b.Vectors[0]); cos > 0.999 {
		t.Errorf("cls and mean pooling agree (cosine %g): the folder's pooling config was ignored", cos)
	}
	if err := reg.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := reg.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := embed(def, []string{"x"}, Options{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Embed after Close: got %v, want ErrClosed", err)
	}
}

func TestBrokenModelFolders(t *testing.T) {
	needModel(t)
	cases := []struct {
		name  string
		spoil func(dir string)
		want  string
	}{
		{"missing folder", func(dir string) { os.RemoveAll(dir) }, "tokenizer.json: no such file"},
		{"missing model.onnx", func(dir string) { os.Remove(filepath.Join(dir, "model.onnx")) }, "model.onnx"},
		{"garbage model.onnx", func(dir string) {
			os.Remove(filepath.Join(dir, "model.onnx"))
			os.WriteFile(filepath.Join(dir, "model.onnx"), []byte("not a model"), 0o644)
		}, "reading ONNX model"},
		{"broken tokenizer.json", func(dir string) { os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{"), 0o644) }, "tokenizer.json"},
		{"broken pooling config", func(dir string) {
			os.WriteFile(filepath.Join(dir, "1_Pooling", "config.json"), []byte(`{"pooling_mode_max_tokens": true}`), 0o644)
		}, "pooling_mode_max_tokens is not supported"},
		{"two pooling modes", func(dir string) {
			os.WriteFile(filepath.Join(dir, "1_Pooling", "config.json"), []byte(`{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": true}`), 0o644)
		}, "want exactly one pooling_mode_*"},
		{"broken modules.json", func(dir string) { os.WriteFile(filepath.Join(dir, "modules.json"), []byte(`[1,`), 0o644) }, "modules.json is not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyModelDir(t)
			c.spoil(dir)
			m, err := Load(testRT, Config{ID: "broken", Path: dir}, SessionConfig{})
			if err == nil {
				m.Close()
				t.Fatal("Load succeeded on a broken folder")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestDeviceChoice(t *testing.T) {
	needModel(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s, err := testRT.NewSession(filepath.Join(testModelDir, "model.onnx"), SessionConfig{Device: device.Device{Kind: device.Auto}, Logger: log})
	if err != nil {
		t.Fatalf("auto must always give a session: %v", err)
	}
	defer s.Close()
	if s.Device().Kind == device.CUDA {
		t.Skip("the CUDA provider loaded here; the CPU fallback is not exercised")
	}
	if s.Device().Kind != device.CPU || !strings.Contains(logs.String(), "CUDA execution provider unavailable, using the CPU") {
		t.Errorf("auto without CUDA: device %s, log %q; want cpu and a log line saying why", s.Device(), logs.String())
	}
	_, err = testRT.NewSession(filepath.Join(testModelDir, "model.onnx"), SessionConfig{Device: device.Device{Kind: device.CUDA}})
	if err == nil || !strings.Contains(err.Error(), "CUDA execution provider") {
		t.Errorf("explicit cuda without CUDA: got %v, want an error naming the CUDA execution provider", err)
	}
}

func TestFindORTLibrary(t *testing.T) {
	t.Setenv("ORT_LIB", filepath.Join(t.TempDir(), "nope.so"))
	_, err := FindORTLibrary("")
	if !errors.Is(err, ErrORTLibrary) || !strings.Contains(err.Error(), "nope.so") || !strings.Contains(err.Error(), "ORT_LIB") {
		t.Errorf("missing ORT_LIB file: got %v, want ErrORTLibrary naming the path and ORT_LIB", err)
	}
	_, err = FindORTLibrary("/definitely/missing/libonnxruntime.so.1")
	if !errors.Is(err, ErrORTLibrary) {
		t.Errorf("missing explicit path: got %v", err)
	}
}

func TestHuggingFaceONNXSubfolder(t *testing.T) {
	dir := copyModelDir(t)
	if err := os.Mkdir(filepath.Join(dir, "onnx"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "model.onnx"), filepath.Join(dir, "onnx", "model.onnx")); err != nil {
		t.Fatal(err)
	}
	m, err := Load(testRT, Config{ID: "hf", Path: dir}, SessionConfig{})
	if err != nil {
		t.Fatalf("a folder with onnx/model.onnx (Hugging Face's layout) did not load: %v", err)
	}
	defer m.Close()
	a, err := embed(m, []string{"same"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := embed(testModel, []string{"same"}, Options{})
	if c := modelstest.Cosine(a.Vectors[0], b.Vectors[0]); c < 0.99999 {
		t.Errorf("same model, other layout: cosine %g", c)
	}
}

func TestReplicas(t *testing.T) {
	needModel(t)
	m, err := Load(testRT, Config{ID: "two", Path: testModelDir, Devices: []string{"cpu", "cpu"}}, SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if n := len(m.Info().Devices); n != 2 || len(m.onnx.replicas) != 2 {
		t.Fatalf("%d devices, %d replicas; want 2", n, len(m.onnx.replicas))
	}
	m.onnx.replicas[0].inflight.Add(1)
	if m.onnx.pick() != m.onnx.replicas[1] {
		t.Error("pick chose the busy replica")
	}
	m.onnx.replicas[0].inflight.Add(-1)
	want, _ := embed(testModel, modelstest.SampleTexts, Options{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			got, err := embed(m, modelstest.SampleTexts, Options{})
			if err != nil {
				t.Error(err)
				return
			}
			for i := range want.Vectors {
				if c := modelstest.Cosine(got.Vectors[i], want.Vectors[i]); c < 0.99999 {
					t.Errorf("text %d on replicas: cosine %g", i, c)
				}
			}
		})
	}
	wg.Wait()
	bad := RegistryConfig{Models: []Config{{ID: "x", Path: "m", Device: "cpu", Devices: []string{"cuda:0", "gpu"}}}}.Validate()
	if bad == nil || !strings.Contains(bad.Error(), "cannot be combined with device") || !strings.Contains(bad.Error(), `models[0].devices[1]: "gpu"`) {
		t.Errorf("devices validation: %v", bad)
	}
}
