package models

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/embedd/embedd/device"
	"github.com/embedd/embedd/models/tokenizer"
	"github.com/embedd/embedd/vec"
)

// Errors a caller can match with errors.Is to tell bad input from failure.
var (
	// ErrInvalidInput is wrapped by every error about a request's content.
	ErrInvalidInput = errors.New("invalid input")
	// ErrClosed is returned by a Model used after Close.
	ErrClosed = errors.New("embedd/models: model is closed")
)

// InputError says which text of a request was bad and why; it wraps
// ErrInvalidInput.
type InputError struct {
	Index  int    // position of the text in the request
	Reason string // what is wrong with it
}

// Error implements error.
func (e *InputError) Error() string {
	return fmt.Sprintf("embedd/models: text %d %s", e.Index, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidInput) true.
func (e *InputError) Unwrap() error { return ErrInvalidInput }

// Normalization says whether vectors get unit L2 norm.
type Normalization int

// Normalization choices; the zero value follows the model folder.
const (
	NormalizeDefault Normalization = iota // as the model folder says (a Normalize module)
	NormalizeOn                           // always L2-normalise
	NormalizeOff                          // never
)

// Truncation says what happens to a text longer than the model's maximum.
type Truncation int

// Truncation choices; the zero value truncates.
const (
	TruncateEnd Truncation = iota // keep the first tokens, as sentence-transformers does
	Reject                        // refuse the request with an InputError
)

// Options are per-request embedding settings.
type Options struct {
	Normalize Normalization
	Truncate  Truncation
	// Dimensions keeps only the first Dimensions components (Matryoshka
	// models) and then re-normalises when normalisation is on; 0 keeps all.
	Dimensions int
}

// Kinds of model, as Info.Kind names them.
const (
	KindONNX   = "onnx"   // a transformer run by ONNX Runtime, then pooled
	KindStatic = "static" // a token table, mean-pooled (static.go)
)

// Info describes a loaded model.
type Info struct {
	ID        string
	Path      string
	Kind      string          // KindONNX, or another engine's kind
	Dim       int             // width of the vectors (the hidden size)
	MaxLength int             // tokens, [CLS] and [SEP] included (static models add none)
	Pooling   Pooling         // how token states become one vector
	Normalize bool            // whether vectors are L2-normalised by default
	Device    device.Device   // where inference runs (the first replica's device)
	Devices   []device.Device // every replica's device, in order
}

// engine computes one batch's pooled, not yet normalised vectors: the ONNX
// sessions of a model's replicas, or another kind of model. Model checks
// the arguments and serialises engine use against Close.
type engine interface {
	// forward writes the vector of seqs[i] (1 to MaxLength ids each) into
	// dst[i] (Dim wide). Safe for concurrent use.
	forward(seqs [][]int32, dst [][]float32) error
	// close releases the engine; nothing runs on it any more.
	close() error
}

// Model turns token sequences into vectors: the tokenizer, the engine and
// the pooling of one model folder. It does not batch: the caller packs
// batches (package core's batcher) and calls Forward. It is safe for
// concurrent use.
type Model struct {
	info Info
	tok  *tokenizer.Tokenizer
	eng  engine
	onnx *onnxEngine // eng when it is ONNX, for Session; else nil
	// static is eng when it is a static table, whose tokenization adds no
	// [CLS] and [SEP] and may leave a text no token; else nil.
	static *staticModel

	// mu guards closed against eng: Forward holds it shared while it runs
	// the engine, Close holds it exclusively to wait for them and release.
	mu     sync.RWMutex
	closed bool
}

// Config is one model's entry in the registry's configuration.
type Config struct {
	// ID names the model in requests; [a-zA-Z0-9._-]{1,128}.
	ID string `json:"id"`
	// Aliases are other names requests may use for this model (say, the
	// OpenAI model name a client sends); same pattern as ID.
	Aliases []string `json:"aliases,omitempty"`
	// Path is the model folder (model.onnx, tokenizer.json and optional
	// sentence-transformers files).
	Path string `json:"path"`
	// Device is cpu (default), cuda, cuda:N or auto (device.Parse).
	Device string `json:"device,omitempty"`
	// Devices, instead of Device, runs one replica of the model per entry
	// (say ["cuda:0", "cuda:1"]); each batch goes to the least busy one.
	Devices []string `json:"devices,omitempty"`
	// IntraOpThreads and InterOpThreads set ONNX Runtime's thread pools;
	// 0 keeps its defaults.
	IntraOpThreads int `json:"intra_op_threads,omitempty"`
	InterOpThreads int `json:"inter_op_threads,omitempty"`
	// GPUMemLimit caps the CUDA provider's memory arena, in bytes; 0 leaves
	// it unlimited.
	GPUMemLimit int64 `json:"gpu_mem_limit,omitempty"`
	// MaxLength overrides the folder's maximum sequence length (tokens).
	MaxLength int `json:"max_length,omitempty"`
	// Pooling overrides the folder's pooling mode (mean, cls, lasttoken).
	Pooling string `json:"pooling,omitempty"`
	// Normalize overrides whether vectors are L2-normalised by default.
	Normalize *bool `json:"normalize,omitempty"`
}

// Load opens the model folder cfg.Path on rt. The caller owns the Model and
// must Close it before closing rt.
//
// A static embedding folder (static.go) needs no Runtime: rt may be nil.
func Load(rt *Runtime, cfg Config, sc SessionConfig) (*Model, error) {
	return load(rt, cfg, sc, true)
}

// load is Load, or LoadTokenizing without sessions.
func load(rt *Runtime, cfg Config, sc SessionConfig, sessions bool) (*Model, error) {
	if sub, ok, err := staticFolder(cfg.Path); err != nil {
		return nil, err
	} else if ok {
		return loadStaticModel(cfg, sub)
	}
	fc, err := readFolder(cfg.Path)
	if err != nil {
		return nil, err
	}
	if cfg.Pooling != "" {
		if fc.pooling, err = ParsePooling(cfg.Pooling); err != nil {
			return nil, err
		}
	}
	if cfg.Normalize != nil {
		fc.normalize = *cfg.Normalize
	}
	if cfg.MaxLength > 0 {
		fc.maxLen = cfg.MaxLength
	}
	tok, err := tokenizer.FromFile(filepath.Join(cfg.Path, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	sc.IntraOpThreads, sc.InterOpThreads, sc.GPUMemLimit = cfg.IntraOpThreads, cfg.InterOpThreads, cfg.GPUMemLimit
	m := &Model{
		info: Info{ID: cfg.ID, Path: cfg.Path, Kind: KindONNX, MaxLength: fc.maxLen, Pooling: fc.pooling, Normalize: fc.normalize},
		tok:  tok,
	}
	if !sessions {
		m.eng = tokenizingOnly{}
		return m, nil
	}
	oe := &onnxEngine{pooling: fc.pooling}
	devices := cfg.Devices
	if len(devices) == 0 {
		devices = []string{cfg.Device}
	}
	for _, d := range devices {
		if sc.Device, err = device.Parse(d); err == nil {
			var sess *Session
			if sess, err = rt.NewSession(onnxFile(cfg.Path), sc); err == nil {
				oe.replicas = append(oe.replicas, &replica{sess: sess})
				m.info.Devices = append(m.info.Devices, sess.Device())
				continue
			}
		}
		return nil, errors.Join(err, oe.close())
	}
	first := oe.replicas[0].sess
	oe.dim = first.Hidden()
	m.info.Dim, m.info.Device = first.Hidden(), first.Device()
	m.eng, m.onnx = oe, oe
	return m, nil
}

// LoadTokenizing opens the model folder of cfg for tokenizing only: its
// tokenizer and maximum length (and, for a static model, its table, which is
// cheap), without ONNX Runtime or a transformer's weights, so a tool that
// only tokenizes works where ONNX Runtime is not installed. Forward on it
// fails. The caller owns the Model and closes it.
func LoadTokenizing(cfg Config) (*Model, error) {
	return load(nil, cfg, SessionConfig{}, false)
}

// tokenizingOnly is the engine of a Model opened by LoadTokenizing.
type tokenizingOnly struct{}

func (tokenizingOnly) forward([][]int32, [][]float32) error {
	return errors.New("embedd/models: this model was opened for tokenizing only (LoadTokenizing)")
}

func (tokenizingOnly) close() error { return nil }

// onnxFile is dir/model.onnx, or dir/onnx/model.onnx where only that exists
// (the layout of Hugging Face repositories that ship an ONNX export).
func onnxFile(dir string) string {
	top := filepath.Join(dir, "model.onnx")
	if _, err := os.Stat(top); err != nil {
		if sub := filepath.Join(dir, "onnx", "model.onnx"); isFile(sub) {
			return sub
		}
	}
	return top
}

// Info describes the model.
func (m *Model) Info() Info { return m.info }

// Tokenizer is the model's tokenizer.
func (m *Model) Tokenizer() *tokenizer.Tokenizer { return m.tok }

// Session is the first replica's ONNX session, for benchmarks that run the
// session alone; nil for a model that is not ONNX.
func (m *Model) Session() *Session {
	if m.onnx == nil {
		return nil
	}
	return m.onnx.replicas[0].sess
}

// Encode appends to dst the ids of text as this model tokenizes it (with
// [CLS] and [SEP] for a transformer, without for a static model), cut to
// maxLen ids when maxLen > 0, and returns them with the count before the
// cut. It does not check UTF-8 (Tokenize does).
func (m *Model) Encode(dst []int32, text string, maxLen int) (ids []int32, n int) {
	if maxLen <= 0 {
		maxLen = len(text) + 2 // no text has more pieces than bytes, plus the two special tokens
	}
	if m.static != nil {
		return m.static.encode(dst, text, maxLen)
	}
	return m.tok.Encode(dst, text, maxLen)
}

// Tokenize appends to dst the ids of text (index i of its request) cut to
// the model's maximum length, or an InputError when text is not valid UTF-8
// or, with Reject, is too long.
func (m *Model) Tokenize(dst []int32, i int, text string, t Truncation) ([]int32, error) {
	if !utf8.ValidString(text) {
		return dst, &InputError{Index: i, Reason: "is not valid UTF-8"}
	}
	start := len(dst)
	ids, n := m.Encode(dst, text, m.info.MaxLength)
	if n > m.info.MaxLength && t == Reject {
		return ids[:start], &InputError{Index: i, Reason: fmt.Sprintf("has %d tokens, over model %s's limit of %d (allow truncation to cut it)", n, m.info.ID, m.info.MaxLength)}
	}
	return ids, nil
}

// Forward runs one batch, as packed by the caller, and writes each
// sequence's pooled, not yet normalised vector (Dim wide) into dst[i].
// Every sequence must hold 1 to MaxLength ids (0 to MaxLength for a static
// model, which gives no token the zero vector). Use Finish to apply a
// request's options to the result. Safe for concurrent use.
func (m *Model) Forward(seqs [][]int32, dst [][]float32) error {
	if len(dst) != len(seqs) {
		return fmt.Errorf("embedd/models: Forward got %d sequences but %d destinations", len(seqs), len(dst))
	}
	for i, s := range seqs {
		if (len(s) == 0 && m.static == nil) || len(s) > m.info.MaxLength {
			return &InputError{Index: i, Reason: fmt.Sprintf("has %d tokens, want 1 to %d", len(s), m.info.MaxLength)}
		}
		if len(dst[i]) != m.info.Dim {
			return fmt.Errorf("embedd/models: destination %d holds %d floats, want %d", i, len(dst[i]), m.info.Dim)
		}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	return m.eng.forward(seqs, dst)
}

// CheckOptions reports whether o suits this model (dimensions in range).
func (m *Model) CheckOptions(o Options) error {
	if o.Dimensions != 0 && (o.Dimensions < 1 || o.Dimensions > m.info.Dim) {
		return fmt.Errorf("embedd/models: dimensions %d is not in [1, %d] for model %s: %w", o.Dimensions, m.info.Dim, m.info.ID, ErrInvalidInput)
	}
	return nil
}

// Finish applies o to a vector from Forward: it keeps the first Dimensions
// components and L2-normalises them when normalisation is on, in place, and
// returns the kept prefix. o must have passed CheckOptions.
func (m *Model) Finish(v []float32, o Options) []float32 {
	if o.Dimensions > 0 {
		v = v[:o.Dimensions:o.Dimensions]
	}
	if o.Normalize == NormalizeOn || (o.Normalize == NormalizeDefault && m.info.Normalize) {
		vec.Normalize(v) // a zero vector stays zero
	}
	return v
}

// onnxEngine runs batches on the ONNX sessions of a model's replicas, each
// batch on the least busy one, and pools the token states.
type onnxEngine struct {
	replicas []*replica // one session per configured device
	pooling  Pooling
	dim      int
}

// replica is one session of the model and the batches running on it.
type replica struct {
	sess     *Session
	inflight atomic.Int32
}

// pick returns the replica with the fewest batches running.
func (e *onnxEngine) pick() *replica {
	best := e.replicas[0]
	for _, r := range e.replicas[1:] {
		if r.inflight.Load() < best.inflight.Load() {
			best = r
		}
	}
	return best
}

// scratch is one forward call's reusable buffers.
type scratch struct {
	batch  Batch
	states []float32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (e *onnxEngine) forward(seqs [][]int32, dst [][]float32) error {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	fillBatch(&sc.batch, seqs)
	var err error
	r := e.pick()
	r.inflight.Add(1)
	sc.states, err = r.sess.Run(&sc.batch, sc.states)
	r.inflight.Add(-1)
	if err != nil {
		return err
	}
	h, rowLen := e.dim, sc.batch.SeqLen*e.dim
	for r, s := range seqs {
		pool(dst[r][:h], sc.states[r*rowLen:(r+1)*rowLen], len(s), e.pooling)
	}
	return nil
}

// close closes every session, in reverse order, errors joined.
func (e *onnxEngine) close() error {
	var errs []error
	for i := len(e.replicas) - 1; i >= 0; i-- {
		errs = append(errs, e.replicas[i].sess.Close())
	}
	return errors.Join(errs...)
}

// fillBatch pads seqs into b, right-padded with id 0 and mask 0; token
// type ids are all 0 (single-segment input).
func fillBatch(b *Batch, seqs [][]int32) {
	seqLen := 0
	for _, s := range seqs {
		seqLen = max(seqLen, len(s))
	}
	n := len(seqs) * seqLen
	b.Size, b.SeqLen = len(seqs), seqLen
	b.IDs = grow(b.IDs, n)
	b.Mask = grow(b.Mask, n)
	b.TypeIDs = grow(b.TypeIDs, n)
	clear(b.IDs)
	clear(b.Mask)
	clear(b.TypeIDs)
	for i, s := range seqs {
		row := b.IDs[i*seqLen:]
		mask := b.Mask[i*seqLen:]
		for j, id := range s {
			row[j] = int64(id)
			mask[j] = 1
		}
	}
}

func grow(s []int64, n int) []int64 {
	if cap(s) < n {
		return make([]int64, n)
	}
	return s[:n]
}

// Close waits for running Forward calls, then releases the engine (the ONNX
// sessions). It is idempotent and nil-safe.
func (m *Model) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.eng.close()
}
