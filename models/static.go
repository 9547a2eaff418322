package models

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/embedd/embedd/device"
	"github.com/embedd/embedd/models/safetensors"
	"github.com/embedd/embedd/models/tokenizer"
	"github.com/embedd/embedd/vec"
)

// Static embedding models: one vector per token, pooled. Two folder layouts
// are read, each computed the way its own library computes it:
//
//   - sentence-transformers' StaticEmbedding: modules.json names
//     sentence_transformers.models.StaticEmbedding at a path (usually
//     0_StaticEmbedding) that holds model.safetensors with embedding.weight
//     [vocab, dim] and tokenizer.json. StaticEmbedding.preprocess encodes
//     with add_special_tokens=False (no [CLS], no [SEP]), applies the
//     truncation tokenizer.json sets (none if it sets none; embedd then cuts
//     at 512 tokens, or Config.MaxLength) and nn.EmbeddingBag takes the mean
//     of the rows. [UNK] stays in. A Normalize module normalises.
//   - Model2Vec: model.safetensors with embeddings [rows, dim], optional
//     weights [vocab] and mapping [vocab] (vocabulary quantisation: token id
//     to row), tokenizer.json and config.json (normalize). StaticModel.encode
//     (max_length 512) first cuts each text to 512 × the median token length
//     characters, encodes with add_special_tokens=False, drops [UNK], keeps
//     the first 512 ids, and averages embeddings[mapping[id]] × weights[id].
//     model2vec's save_pretrained also writes a modules.json naming
//     StaticEmbedding at path "."; the tensor name (embeddings rather than
//     embedding.weight) says which library's rules apply.
//
// A text with no token left gets the zero vector, as both libraries give.

// staticDefaultMaxLen is the token limit of a static model whose files set
// none: Model2Vec's encode default, and embedd's for StaticEmbedding (whose
// own limit is infinite).
const staticDefaultMaxLen = 512

// staticModel is a loaded static embedding table and its tokenizer.
type staticModel struct {
	tok     *tokenizer.Tokenizer
	table   []float32 // rows × dim, row-major; nil when half holds the rows
	half    []uint16  // the rows as IEEE halves, for an F16 file without weights
	dim     int
	mapping []int32   // token id -> row; nil when the row is the id
	weights []float32 // per-token factor; nil when 1
	unk     int32     // id dropped from encodings; -1 keeps every id
	// maxLen is the most tokens kept (no special tokens are added).
	maxLen int
	// charsPerToken, when > 0, cuts a text to maxLen × charsPerToken code
	// points before tokenizing (Model2Vec).
	charsPerToken int
	normalize     bool
	model2vec     bool
}

// staticFolder says where a folder's static model files are; ok is false
// when dir is not a static model folder.
func staticFolder(dir string) (sub string, ok bool, err error) {
	var modules []struct {
		Path string `json:"path"`
		Type string `json:"type"`
	}
	found, err := readJSON(dir, "modules.json", &modules)
	if err != nil {
		return "", false, err
	}
	if found {
		for _, m := range modules {
			if strings.HasSuffix(m.Type, ".StaticEmbedding") {
				return m.Path, true, nil
			}
		}
		return "", false, nil
	}
	// Model2Vec without modules.json: model.safetensors beside
	// tokenizer.json and no ONNX model.
	return "", isFile(filepath.Join(dir, "model.safetensors")) && isFile(filepath.Join(dir, "tokenizer.json")) &&
		!isFile(onnxFile(dir)), nil
}

// loadStatic reads the static model in dir (whose files are in dir/sub).
// maxLen > 0 overrides the token limit the files give.
func loadStatic(dir, sub string, maxLen int) (*staticModel, error) {
	base := filepath.Join(dir, sub)
	tokPath := filepath.Join(base, "tokenizer.json")
	tok, err := tokenizer.FromFile(tokPath)
	if err != nil {
		return nil, fmt.Errorf("embedd/models: static model %s: %w", dir, err)
	}
	stPath := filepath.Join(base, "model.safetensors")
	st, err := safetensors.ReadFile(stPath)
	if err != nil {
		return nil, err
	}
	m := &staticModel{tok: tok, unk: -1}
	name := "embedding.weight"
	t, err := st.Tensor(name)
	if err != nil {
		name = "embeddings"
		m.model2vec = true
		t, err = st.Tensor(name)
	}
	rows := 0
	if err == nil {
		if t.DType == "F16" {
			m.half, rows, m.dim, err = st.HalfMatrix(name)
		} else {
			m.table, rows, m.dim, err = st.Matrix(name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("embedd/models: static model %s: want embedding.weight (sentence-transformers) or embeddings (Model2Vec): %w", dir, err)
	}
	vocab := tok.VocabSize()
	if m.model2vec {
		if err := m.readModel2Vec(st, base, rows, vocab); err != nil {
			return nil, fmt.Errorf("embedd/models: static model %s: %w", dir, err)
		}
		if m.weights != nil && m.half != nil { // scaled rows: widen once
			m.table = make([]float32, len(m.half))
			vec.AddHalf(m.table, m.half)
			m.half = nil
		}
	} else if rows < vocab {
		return nil, fmt.Errorf("embedd/models: static model %s: %s has %d rows but %s has %d ids: %w", dir, name, rows, tokPath, vocab, safetensors.ErrShape)
	}
	if m.dim == 0 {
		return nil, fmt.Errorf("embedd/models: static model %s: %s has no columns: %w", dir, name, safetensors.ErrShape)
	}
	if m.maxLen, err = tokenizerTruncation(tokPath); err != nil {
		return nil, err
	}
	if m.model2vec || m.maxLen == 0 {
		m.maxLen = staticDefaultMaxLen
	}
	if maxLen > 0 {
		m.maxLen = maxLen
	}
	if !m.model2vec {
		var fc folderConfig
		if fc, err = readFolder(dir); err != nil {
			return nil, err
		}
		m.normalize = fc.normalize
	}
	return m, nil
}

// readModel2Vec reads Model2Vec's optional tensors and config.json.
func (m *staticModel) readModel2Vec(st *safetensors.File, base string, rows, vocab int) error {
	var cfg struct {
		Normalize bool `json:"normalize"`
	}
	if _, err := readJSON(base, "config.json", &cfg); err != nil {
		return err
	}
	m.normalize = cfg.Normalize
	names := st.Names()
	if slices.Contains(names, "mapping") {
		mapping, err := st.Int64s("mapping", vocab)
		if err != nil {
			return err
		}
		m.mapping = make([]int32, vocab)
		for id, r := range mapping {
			if r < 0 || r >= int64(rows) {
				return fmt.Errorf("mapping sends token %d to row %d, outside the %d rows of embeddings: %w", id, r, rows, safetensors.ErrShape)
			}
			m.mapping[id] = int32(r)
		}
	} else if rows < vocab {
		return fmt.Errorf("embeddings has %d rows but the tokenizer has %d ids: %w", rows, vocab, safetensors.ErrShape)
	}
	if slices.Contains(names, "weights") {
		var err error
		if m.weights, err = st.Vector("weights", vocab); err != nil {
			return err
		}
	}
	m.unk = m.tok.UNKID()
	m.charsPerToken = medianTokenChars(m.tok)
	return nil
}

// medianTokenChars is Model2Vec's median_token_length: the median length in
// code points of the vocabulary's tokens (## prefixes included), floored.
func medianTokenChars(tok *tokenizer.Tokenizer) int {
	var lens []int
	for id := range tok.VocabSize() {
		if s, ok := tok.Token(int32(id)); ok {
			lens = append(lens, utf8.RuneCountInString(s))
		}
	}
	if len(lens) == 0 {
		return 1
	}
	slices.Sort(lens)
	n := len(lens)
	if n%2 == 1 {
		return lens[n/2]
	}
	return (lens[n/2-1] + lens[n/2]) / 2
}

// tokenizerTruncation is the max_length of tokenizer.json's truncation, or
// 0 when it sets none.
func tokenizerTruncation(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("embedd/models: %w", err)
	}
	var f struct {
		Truncation *struct {
			MaxLength int `json:"max_length"`
		} `json:"truncation"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return 0, fmt.Errorf("embedd/models: %s: %w", path, err)
	}
	if f.Truncation == nil {
		return 0, nil
	}
	return max(f.Truncation.MaxLength, 0), nil
}

// encode appends to dst the ids the model pools for text, at most maxLen of
// them, and returns n, the number there were before the cut.
func (m *staticModel) encode(dst []int32, text string, maxLen int) (ids []int32, n int) {
	if m.charsPerToken > 0 {
		text = firstRunes(text, maxLen*m.charsPerToken)
	}
	start := len(dst)
	// Encode adds [CLS] and [SEP]; a limit of maxLen+2 keeps maxLen pieces
	// between them. With [UNK] to drop, cut only after dropping it.
	limit := maxLen + 2
	if m.unk >= 0 {
		limit = 0
	}
	ids, n = m.tok.Encode(dst, text, limit)
	body := ids[start+1 : len(ids)-1]
	n -= 2
	if m.unk >= 0 {
		k := 0
		for _, id := range body {
			if id != m.unk {
				body[k] = id
				k++
			}
		}
		body, n = body[:k], k
	}
	body = body[:min(len(body), maxLen)]
	copy(ids[start:], body)
	return ids[:start+len(body)], n
}

// firstRunes is text cut to its first n code points, as Python's text[:n]
// (invalid bytes count one each, as Python's decoder would refuse them).
func firstRunes(text string, n int) string {
	for i := range text {
		if n == 0 {
			return text[:i]
		}
		n--
	}
	return text
}

// pool writes into dst (dim wide) the mean of ids' rows, each times its
// token weight; zero for no ids. Without weights the rows go to
// vec.AddRows or vec.AddHalfRows, which keep the sum in registers while the
// rows stream past and add them in the order of ids: the bits of one
// vec.Add per row.
func (m *staticModel) pool(dst []float32, ids []int32) {
	clear(dst)
	if len(ids) == 0 {
		return
	}
	d, n := m.dim, len(ids)
	switch {
	case m.weights != nil:
		for _, id := range ids {
			r := int(id)
			if m.mapping != nil {
				r = int(m.mapping[id])
			}
			addScaled(dst, m.table[r*d:r*d+d], m.weights[id])
		}
	case m.mapping != nil:
		var rows [256]int32
		for lo := 0; lo < n; lo += len(rows) {
			chunk := ids[lo:min(n, lo+len(rows))]
			for i, id := range chunk {
				rows[i] = m.mapping[id]
			}
			m.addRows(dst, rows[:len(chunk)])
		}
	default:
		m.addRows(dst, ids)
	}
	vec.Scale(dst, 1/float32(n))
}

// addRows adds the table's rows to dst, in order.
func (m *staticModel) addRows(dst []float32, rows []int32) {
	if m.half != nil {
		vec.AddHalfRows(dst, m.half, rows)
	} else {
		vec.AddRows(dst, m.table, rows)
	}
}

// addScaled adds w × src to dst elementwise; len(src) == len(dst).
func addScaled(dst, src []float32, w float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += w * v
	}
}

// loadStaticModel opens the static model folder cfg.Path (files in sub) as
// a Model on the CPU.
func loadStaticModel(cfg Config, sub string) (*Model, error) {
	devices := cfg.Devices
	if len(devices) == 0 {
		devices = []string{cfg.Device}
	}
	for _, d := range devices {
		if dev, err := device.Parse(d); err != nil || dev.Kind == device.CUDA {
			return nil, fmt.Errorf("embedd/models: %s is a static embedding model, which runs on the CPU; device %q is not for it", cfg.Path, d)
		}
	}
	if cfg.Pooling != "" && cfg.Pooling != string(PoolMean) {
		return nil, fmt.Errorf("embedd/models: %s is a static embedding model, which pools by mean; pooling %q is not for it", cfg.Path, cfg.Pooling)
	}
	sm, err := loadStatic(cfg.Path, sub, cfg.MaxLength)
	if err != nil {
		return nil, err
	}
	normalize := sm.normalize
	if cfg.Normalize != nil {
		normalize = *cfg.Normalize
	}
	return &Model{
		info: Info{ID: cfg.ID, Path: cfg.Path, Kind: KindStatic, Dim: sm.dim, MaxLength: sm.maxLen,
			Pooling: PoolMean, Normalize: normalize, Devices: []device.Device{{}}},
		tok:    sm.tok,
		eng:    sm,
		static: sm,
	}, nil
}

// forward pools each sequence's rows; ids outside the vocabulary are an
// InputError (they can only come from a caller that tokenized elsewhere).
func (m *staticModel) forward(seqs [][]int32, dst [][]float32) error {
	vocab := int32(m.tok.VocabSize())
	for i, s := range seqs {
		for _, id := range s {
			if id < 0 || id >= vocab {
				return &InputError{Index: i, Reason: fmt.Sprintf("has token id %d, outside the vocabulary of %d", id, vocab)}
			}
		}
		m.pool(dst[i], s)
	}
	return nil
}

// close releases nothing: the table is ordinary memory.
func (m *staticModel) close() error { return nil }
