package index

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"unicode/utf8"

	"github.com/embedd/embedd/index/flat"
	"github.com/embedd/embedd/vec"
	"golang.org/x/sys/unix"
)

// Errors returned by this package wrap one of these; match with errors.Is.
var (
	// ErrInvalid is wrapped by every error about a caller's argument: a
	// vector, an id, metadata, a name, k, a dimension. Nothing was stored.
	ErrInvalid = errors.New("embedd/index: invalid argument")
	// ErrNotFound is wrapped when a collection does not exist.
	ErrNotFound = errors.New("embedd/index: not found")
	// ErrExists is wrapped when creating a collection that already exists.
	ErrExists = errors.New("embedd/index: already exists")
	// ErrClosed is wrapped by calls on a closed or dropped collection.
	ErrClosed = errors.New("embedd/index: closed")
	// ErrReadOnly is wrapped by writes to a collection opened read-only.
	ErrReadOnly = errors.New("embedd/index: read-only")
	// ErrLocked is wrapped when another writer holds the collection.
	ErrLocked = errors.New("embedd/index: locked by another writer")
	// ErrCorrupt is wrapped when files on disk fail their checks in a way
	// that recovery must not paper over (damage before the end of the log,
	// a bad checkpoint or data file header).
	ErrCorrupt = errors.New("embedd/index: corrupt")
	// ErrUnavailable is wrapped when a Manager's collection exists but could
	// not be opened; the error also wraps the reason (see
	// Manager.Unavailable).
	ErrUnavailable = errors.New("embedd/index: collection unavailable")
	// ErrNoSpace is wrapped when a write, checkpoint, compaction or create
	// failed because the file system holding the data is full (ENOSPC or
	// EDQUOT); the error names the directory. Nothing of a refused write is
	// stored, and once space is freed writes succeed again without
	// reopening anything.
	ErrNoSpace = errors.New("embedd/index: no space left")
)

// Limits enforced at this layer.
const (
	// MaxDim is the largest dimension a collection may have.
	MaxDim = 65536
	// MaxIDBytes is the longest id, in bytes of UTF-8.
	MaxIDBytes = 256
	// MaxMetadataBytes is the largest metadata of one row.
	MaxMetadataBytes = 1 << 20
	// MaxK is the largest k a search accepts.
	MaxK = 10000
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// noSpace wraps err in ErrNoSpace, naming dir, when the file system was
// full; other errors (and nil) come back as they are.
func noSpace(dir string, err error) error {
	if err == nil || errors.Is(err, ErrNoSpace) || !(errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)) {
		return err
	}
	return fmt.Errorf("%w on the file system of %s: %w", ErrNoSpace, dir, err)
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// Metric is how a collection scores a query against a row, fixed when the
// collection is created. It is the search kernel's type (flat.Metric), so
// one parse and one zero-value rule serve both layers: the zero value is no
// metric, and Spec refuses it.
type Metric = flat.Metric

// The metrics.
const (
	// Cosine similarity, larger is closer. Rows are stored normalised to
	// unit length, so the score is their dot product with the normalised
	// query; a vector without a direction (zero, subnormal) is refused.
	Cosine = flat.Cosine
	// Dot is the plain inner product, larger is closer.
	Dot = flat.Dot
	// L2 scores by squared Euclidean distance ‖q-x‖², smaller is closer.
	// Each row's squared norm is stored beside it.
	L2 = flat.L2
)

// ParseMetric reads "cosine", "dot" or "l2" (in any case), as
// flat.ParseMetric does; its error wraps ErrInvalid.
func ParseMetric(s string) (Metric, error) {
	m, err := flat.ParseMetric(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return m, nil
}

var namePattern = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// ValidName reports why name cannot name a collection: it must match
// [a-z0-9_-]{1,64}, which also keeps it a single, plain path element.
func ValidName(name string) error {
	if !namePattern.MatchString(name) {
		return invalidf("collection name %q does not match [a-z0-9_-]{1,64}", name)
	}
	return nil
}

// Spec is what a collection is, fixed when it is created.
type Spec struct {
	// Dim is the vectors' dimension, in [1, MaxDim].
	Dim int
	// Metric is how rows are scored against queries.
	Metric Metric
	// Model optionally names the embedding model that turns the
	// collection's texts into vectors. This package stores it and does not
	// interpret it. Empty, or 1 to 128 characters of [A-Za-z0-9._-].
	Model string
}

var modelPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func (s Spec) validate() error {
	if s.Dim < 1 || s.Dim > MaxDim {
		return invalidf("dim %d is not in [1, %d]", s.Dim, MaxDim)
	}
	if !s.Metric.Valid() {
		return invalidf("metric %d is not one of cosine, dot, l2", s.Metric)
	}
	if s.Model != "" && !modelPattern.MatchString(s.Model) {
		return invalidf("model %q does not match [A-Za-z0-9._-]{1,128}", s.Model)
	}
	return nil
}

// where names what an error is about ("record 3 (id "a")", "line 17",
// "query 0"); it is formatted only when there is an error.
type where struct {
	kind string
	i    int
	id   string
}

func (w where) String() string {
	if w.id != "" {
		return fmt.Sprintf("%s %d (id %q)", w.kind, w.i, w.id)
	}
	return fmt.Sprintf("%s %d", w.kind, w.i)
}

func validID(id string, w where) error {
	switch {
	case id == "":
		return invalidf("%v: id is empty", w)
	case len(id) > MaxIDBytes:
		return invalidf("%v: id %.32q… is %d bytes, over %d", w, id, len(id), MaxIDBytes)
	case !utf8.ValidString(id):
		return invalidf("%v: id %q is not valid UTF-8", w, id)
	}
	return nil
}

// checkVector checks v against the collection's dimension and metric (the
// dimension, finite components, and a norm the metric can use: under
// cosine one vec.Norm accepts, otherwise a squared norm float32 can hold).
// what names the vector in errors.
func checkVector(v []float32, dim int, metric Metric, what where) error {
	if len(v) != dim {
		return invalidf("%v: vector has %d dimensions, want %d", what, len(v), dim)
	}
	for j, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return invalidf("%v: vector component %d is %v", what, j, x)
		}
	}
	if metric == Cosine {
		if norm, ok := vec.Norm(v); !ok {
			return noDirection(norm, what)
		}
		return nil
	}
	if math.IsInf(float64(float32(vec.SquaredNorm(v))), 0) {
		return invalidf("%v: vector's squared norm overflows float32", what)
	}
	return nil
}

// noDirection says why vec.Norm refused a vector of this norm.
func noDirection(norm float64, what where) error {
	switch {
	case norm == 0:
		return invalidf("%v: zero vector under the cosine metric", what)
	case norm < vec.MinNorm:
		return invalidf("%v: vector norm %g is below %g (subnormal components) under the cosine metric: its direction cannot be normalised", what, norm, vec.MinNorm)
	}
	return invalidf("%v: vector norm %g is not finite under the cosine metric", what, norm)
}

// appendVector checks v (see checkVector) and appends its stored form to
// dst as little-endian float32: under cosine normalised by vec.Normalize,
// otherwise as it is.
func appendVector(dst []byte, v []float32, dim int, metric Metric, what where) ([]byte, error) {
	if err := checkVector(v, dim, metric, what); err != nil {
		return dst, err
	}
	if metric == Cosine {
		v = slices.Clone(v)
		vec.Normalize(v) // checkVector saw that it can be
	}
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst, nil
}

// checkMetadata returns the metadata kind and the bytes to store. JSON must be
// one object; it is stored compacted.
func checkMetadata(meta []byte, isJSON bool, what where) (byte, []byte, error) {
	if !isJSON && len(meta) == 0 {
		return metaKindNone, nil, nil
	}
	if len(meta) > MaxMetadataBytes {
		return 0, nil, invalidf("%v: metadata is %d bytes, over %d", what, len(meta), MaxMetadataBytes)
	}
	if !isJSON {
		return metaKindBytes, meta, nil
	}
	trimmed := bytes.TrimLeft(meta, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(meta) {
		return 0, nil, invalidf("%v: metadata is not a valid JSON object", what)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, meta); err != nil {
		return 0, nil, invalidf("%v: metadata is not a valid JSON object: %w", what, err)
	}
	return metaKindJSON, buf.Bytes(), nil
}
