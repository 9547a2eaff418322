package index

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// manifest is a collection's Spec as stored: manifest.json, a small JSON
// object written once and never changed:
//
//	{"format": 1, "dim": 384, "metric": "cosine", "model": "minilm"}
//
// (model is left out when empty).
type manifest struct {
	Format int    `json:"format"`
	Dim    int    `json:"dim"`
	Metric Metric `json:"-"`
	// MetricName is Metric as text in the file.
	MetricName string `json:"metric"`
	Model      string `json:"model,omitempty"`
}

func newManifest(spec Spec) (manifest, error) {
	if err := spec.validate(); err != nil {
		return manifest{}, err
	}
	return manifest{Format: formatVersion, Dim: spec.Dim, Metric: spec.Metric, MetricName: spec.Metric.String(), Model: spec.Model}, nil
}

func (m manifest) spec() Spec { return Spec{Dim: m.Dim, Metric: m.Metric, Model: m.Model} }

// writeManifest writes dir/manifest.json atomically.
func writeManifest(dir string, m manifest) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	return writeFileAtomic(dir, manifestName, append(data, '\n'))
}

// readManifest reads and checks dir/manifest.json. A missing file is
// ErrNotFound: dir is not a collection.
func readManifest(dir string) (manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return manifest{}, fmt.Errorf("%w: no collection in %s", ErrNotFound, dir)
	}
	if err != nil {
		return manifest{}, fmt.Errorf("embedd/index: %w", err)
	}
	var m manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return manifest{}, corruptf("%s/%s: %w", dir, manifestName, err)
	}
	if m.Format != formatVersion {
		return manifest{}, corruptf("%s/%s: format %d, want %d", dir, manifestName, m.Format, formatVersion)
	}
	metric, err := ParseMetric(m.MetricName)
	if err != nil {
		return manifest{}, corruptf("%s/%s: metric %q is not one of cosine, dot, l2", dir, manifestName, m.MetricName)
	}
	m.Metric = metric
	if err := m.spec().validate(); err != nil {
		return manifest{}, corruptf("%s/%s: %w", dir, manifestName, err)
	}
	return m, nil
}
