package index

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		spec Spec
		file string
	}{
		{Spec{Dim: 384, Metric: Cosine}, `{"format":1,"dim":384,"metric":"cosine"}`},
		{Spec{Dim: 3, Metric: L2, Model: "minilm-l6.v2"}, `{"format":1,"dim":3,"metric":"l2","model":"minilm-l6.v2"}`},
	} {
		m, err := newManifest(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeManifest(dir, m); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(filepath.Join(dir, manifestName))
		if string(data) != tc.file+"\n" {
			t.Fatalf("manifest.json = %s", data)
		}
		got, err := readManifest(dir)
		if err != nil || got != m || got.spec() != tc.spec {
			t.Fatalf("readManifest = %+v, %v; want %+v", got, err, m)
		}
	}
}

func TestManifestErrors(t *testing.T) {
	if _, err := readManifest(t.TempDir()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	for _, bad := range []string{
		`{"format":2,"dim":4,"metric":"dot"}`,
		`{"format":1,"dim":0,"metric":"dot"}`,
		`{"format":1,"dim":4,"metric":"hamming"}`,
		`{"format":1,"dim":4,"metric":"dot","extra":1}`,
		`{"format":1,"dim":4,"metric":"dot","model":"no spaces"}`,
		`not json`,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, manifestName), []byte(bad), 0o644)
		if _, err := readManifest(dir); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", bad, err)
		}
	}
	for _, bad := range []Spec{{Dim: 4}, {Dim: 0, Metric: Dot}, {Dim: 4, Metric: Dot, Model: "a/b"}, {Dim: 4, Metric: Dot, Model: string(make([]byte, 129))}} {
		if _, err := newManifest(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}
