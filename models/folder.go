package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// folderConfig is what a model folder says about itself through the
// sentence-transformers files (modules.json, 1_Pooling/config.json,
// sentence_bert_config.json) and Hugging Face's config.json.
type folderConfig struct {
	pooling   Pooling
	normalize bool
	maxLen    int
}

// defaultMaxLen applies when the folder states no maximum sequence length.
const defaultMaxLen = 512

// readFolder reads dir's configuration files. Missing optional files give
// defaults (mean pooling, no normalisation, 512 tokens); present but broken
// ones are errors naming the file.
func readFolder(dir string) (folderConfig, error) {
	fc := folderConfig{pooling: PoolMean, maxLen: defaultMaxLen}
	poolDir := "1_Pooling"
	var modules []struct {
		Path string `json:"path"`
		Type string `json:"type"`
	}
	if ok, err := readJSON(dir, "modules.json", &modules); err != nil {
		return fc, err
	} else if ok {
		for _, m := range modules {
			switch {
			case strings.HasSuffix(m.Type, ".Pooling"):
				poolDir = m.Path
			case strings.HasSuffix(m.Type, ".Normalize"):
				fc.normalize = true
			}
		}
	}
	var pc map[string]any
	poolFile := filepath.Join(poolDir, "config.json")
	if ok, err := readJSON(dir, poolFile, &pc); err != nil {
		return fc, err
	} else if ok {
		p, err := poolingFromConfig(pc)
		if err != nil {
			return fc, fmt.Errorf("embedd/models: %s: %w", filepath.Join(dir, poolFile), err)
		}
		fc.pooling = p
	}
	var sb struct {
		MaxSeqLength int `json:"max_seq_length"`
	}
	if ok, err := readJSON(dir, "sentence_bert_config.json", &sb); err != nil {
		return fc, err
	} else if ok && sb.MaxSeqLength > 0 {
		fc.maxLen = sb.MaxSeqLength
	}
	var hf struct {
		MaxPositionEmbeddings int `json:"max_position_embeddings"`
	}
	if ok, err := readJSON(dir, "config.json", &hf); err != nil {
		return fc, err
	} else if ok && hf.MaxPositionEmbeddings > 0 && hf.MaxPositionEmbeddings < fc.maxLen {
		fc.maxLen = hf.MaxPositionEmbeddings
	}
	return fc, nil
}

// poolingFromConfig maps sentence-transformers' pooling flags to one mode.
func poolingFromConfig(pc map[string]any) (Pooling, error) {
	known := map[string]Pooling{
		"pooling_mode_mean_tokens": PoolMean,
		"pooling_mode_cls_token":   PoolCLS,
		"pooling_mode_lasttoken":   PoolLastToken,
	}
	var on []string
	var mode Pooling
	for k, v := range pc {
		if b, _ := v.(bool); b && strings.HasPrefix(k, "pooling_mode_") {
			on = append(on, k)
			p, ok := known[k]
			if !ok {
				return "", fmt.Errorf("%s is not supported (embedd pools by mean, cls or lasttoken)", k)
			}
			mode = p
		}
	}
	if len(on) != 1 {
		return "", fmt.Errorf("want exactly one pooling_mode_* set to true, found %d %v", len(on), on)
	}
	return mode, nil
}

// readJSON decodes dir/name into v; ok is false when the file does not exist.
func readJSON(dir, name string, v any) (ok bool, err error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("embedd/models: reading %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("embedd/models: %s is not valid JSON of the expected shape: %w", path, err)
	}
	return true, nil
}
