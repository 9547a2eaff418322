package models

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/embedd/embedd/device"
)

// Input names a BERT-style embedding graph may take; a graph takes a subset.
const (
	inputIDs      = "input_ids"
	inputMask     = "attention_mask"
	inputTypeIDs  = "token_type_ids"
	outputHidden  = "last_hidden_state"
	outputHidden2 = "token_embeddings"
)

// SessionConfig says how a Session runs its model.
type SessionConfig struct {
	// Device picks the execution provider; the zero value means CPU.
	Device device.Device
	// IntraOpThreads is ONNX Runtime's thread count inside one operator;
	// 0 leaves ONNX Runtime's default (one per physical core).
	IntraOpThreads int
	// InterOpThreads is the thread count across independent operators;
	// 0 leaves ONNX Runtime's default.
	InterOpThreads int
	// GPUMemLimit caps the CUDA provider's memory arena in bytes; 0 leaves
	// it unlimited.
	GPUMemLimit int64
	// Logger receives the device decision of "auto"; nil means slog.Default().
	Logger *slog.Logger
}

// Batch is one padded batch of token ids, row-major [Size, SeqLen].
type Batch struct {
	Size, SeqLen int
	IDs          []int64
	Mask         []int64
	TypeIDs      []int64
}

// Session runs one ONNX encoder whose output is the hidden state of every
// token ([batch, seq, hidden]). It is safe for concurrent use: ONNX Runtime
// serialises nothing on Run, so callers bound concurrency themselves.
type Session struct {
	sess   *ort.DynamicAdvancedSession
	inputs []string // the graph's inputs, in the order Run passes them
	output string
	hidden int
	device device.Device // resolved: cpu or cuda:N, never auto
	path   string
}

// NewSession opens the ONNX model at path. The caller owns the Session and
// must Close it before closing r. With Device "auto" it tries the CUDA
// provider and falls back to the CPU, logging why; with "cuda" a provider
// that does not load is an error.
func (r *Runtime) NewSession(path string, cfg SessionConfig) (*Session, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger
	inputs, output, hidden, err := inspectGraph(path)
	if err != nil {
		return nil, err
	}
	s := &Session{inputs: inputs, output: output, hidden: hidden, path: path}
	switch cfg.Device.Kind {
	case device.CUDA:
		s.sess, err = newORTSession(path, inputs, output, cfg, cfg.Device.Ordinal)
		s.device = cfg.Device
	case device.Auto:
		s.sess, err = newORTSession(path, inputs, output, cfg, cfg.Device.Ordinal)
		s.device = device.Device{Kind: device.CUDA, Ordinal: cfg.Device.Ordinal}
		if err != nil {
			log.Info("embedd: CUDA execution provider unavailable, using the CPU", "model", path, "reason", err)
			s.sess, err = newORTSession(path, inputs, output, cfg, -1)
			s.device = device.Device{}
		}
	default:
		s.sess, err = newORTSession(path, inputs, output, cfg, -1)
		s.device = device.Device{}
	}
	if err != nil {
		return nil, fmt.Errorf("embedd/models: opening %s on %s: %w", path, cfg.Device, err)
	}
	return s, nil
}

// inspectGraph checks that the graph at path is an encoder embedd can feed:
// int64 inputs among input_ids, attention_mask, token_type_ids (input_ids
// required) and a float32 [batch, seq, hidden] output.
func inspectGraph(path string) (inputs []string, output string, hidden int, err error) {
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, "", 0, fmt.Errorf("embedd/models: reading ONNX model %s: %w", path, err)
	}
	hasIDs := false
	for _, in := range ins {
		switch in.Name {
		case inputIDs, inputMask, inputTypeIDs:
		default:
			return nil, "", 0, fmt.Errorf("embedd/models: model %s has input %q; embedd feeds only %s, %s and %s", path, in.Name, inputIDs, inputMask, inputTypeIDs)
		}
		if in.DataType != ort.TensorElementDataTypeInt64 || len(in.Dimensions) != 2 {
			return nil, "", 0, fmt.Errorf("embedd/models: model %s input %q is %s; want int64 [batch, seq]", path, in.Name, in.String())
		}
		hasIDs = hasIDs || in.Name == inputIDs
		inputs = append(inputs, in.Name)
	}
	if !hasIDs {
		return nil, "", 0, fmt.Errorf("embedd/models: model %s has no %s input", path, inputIDs)
	}
	for _, out := range outs {
		if out.Name != outputHidden && out.Name != outputHidden2 {
			continue
		}
		d := out.Dimensions
		if out.DataType != ort.TensorElementDataTypeFloat || len(d) != 3 || d[2] <= 0 {
			return nil, "", 0, fmt.Errorf("embedd/models: model %s output %q is %s; want float32 [batch, seq, hidden]", path, out.Name, out.String())
		}
		return inputs, out.Name, int(d[2]), nil
	}
	return nil, "", 0, fmt.Errorf("embedd/models: model %s has no %s or %s output", path, outputHidden, outputHidden2)
}

// newORTSession makes the ONNX Runtime session; cudaID < 0 means CPU.
func newORTSession(path string, inputs []string, output string, cfg SessionConfig, cudaID int) (*ort.DynamicAdvancedSession, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if err := opts.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		return nil, err
	}
	if cfg.IntraOpThreads > 0 {
		if err := opts.SetIntraOpNumThreads(cfg.IntraOpThreads); err != nil {
			return nil, err
		}
	}
	if cfg.InterOpThreads > 0 {
		if err := opts.SetInterOpNumThreads(cfg.InterOpThreads); err != nil {
			return nil, err
		}
	}
	if cudaID < 0 {
		return ort.NewDynamicAdvancedSession(path, inputs, []string{output}, opts)
	}
	var sess *ort.DynamicAdvancedSession
	restored, err := keepGoSignalHandlers(func() error {
		if err := appendCUDA(opts, cudaID, cfg.GPUMemLimit); err != nil {
			return fmt.Errorf("CUDA execution provider: %w", err)
		}
		var err error
		sess, err = ort.NewDynamicAdvancedSession(path, inputs, []string{output}, opts)
		return err
	})
	if restored > 0 && cfg.Logger != nil {
		cfg.Logger.Info("embedd: restored signal handlers the CUDA provider replaced", "count", restored)
	}
	return sess, err
}

// appendCUDA adds the CUDA execution provider for device id to opts. The
// arena grows by what each request needs (kSameAsRequested), not to the
// next power of two, so that batches of varying shape do not ratchet device
// memory up; memLimit > 0 caps it. cuDNN's exhaustive convolution search is
// off: BERT has no convolutions worth searching.
func appendCUDA(opts *ort.SessionOptions, id int, memLimit int64) error {
	cuda, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer cuda.Destroy()
	o := map[string]string{
		"device_id":              strconv.Itoa(id),
		"arena_extend_strategy":  "kSameAsRequested",
		"cudnn_conv_algo_search": "DEFAULT",
	}
	if memLimit > 0 {
		o["gpu_mem_limit"] = strconv.FormatInt(memLimit, 10)
	}
	if err := cuda.Update(o); err != nil {
		return err
	}
	return opts.AppendExecutionProviderCUDA(cuda)
}

// Hidden is the width of the graph's hidden state.
func (s *Session) Hidden() int { return s.hidden }

// Device is where the session runs (never "auto").
func (s *Session) Device() device.Device { return s.device }

// Run feeds one batch and writes its hidden states, [Size, SeqLen, Hidden]
// row-major, into out, which it grows when short; it returns out resliced to
// that length.
func (s *Session) Run(b *Batch, out []float32) ([]float32, error) {
	n := b.Size * b.SeqLen
	if len(b.IDs) < n || (len(b.Mask) < n && s.takes(inputMask)) || (len(b.TypeIDs) < n && s.takes(inputTypeIDs)) {
		return out, fmt.Errorf("embedd/models: batch of %d×%d holds too few ids", b.Size, b.SeqLen)
	}
	if need := n * s.hidden; cap(out) < need {
		out = make([]float32, need)
	} else {
		out = out[:need]
	}
	shape := ort.NewShape(int64(b.Size), int64(b.SeqLen))
	values := make([]ort.Value, 0, len(s.inputs))
	defer func() {
		for _, v := range values {
			v.Destroy()
		}
	}()
	for _, name := range s.inputs {
		data := b.IDs
		switch name {
		case inputMask:
			data = b.Mask
		case inputTypeIDs:
			data = b.TypeIDs
		}
		t, err := ort.NewTensor(shape, data[:n])
		if err != nil {
			return out, fmt.Errorf("embedd/models: input %s: %w", name, err)
		}
		values = append(values, t)
	}
	res, err := ort.NewTensor(ort.NewShape(int64(b.Size), int64(b.SeqLen), int64(s.hidden)), out)
	if err != nil {
		return out, fmt.Errorf("embedd/models: output buffer: %w", err)
	}
	defer res.Destroy()
	if err := s.sess.Run(values, []ort.Value{res}); err != nil {
		return out, fmt.Errorf("embedd/models: running %s on a %d×%d batch: %w", s.path, b.Size, b.SeqLen, err)
	}
	return out, nil
}

func (s *Session) takes(name string) bool { return slices.Contains(s.inputs, name) }

// Close releases the ONNX Runtime session. It is idempotent and nil-safe.
func (s *Session) Close() error {
	if s == nil || s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	if err != nil {
		return fmt.Errorf("embedd/models: closing session for %s: %w", s.path, err)
	}
	return nil
}
