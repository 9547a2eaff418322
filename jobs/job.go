package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Record is one input item: a line of a text or JSONL file, a Parquet row,
// or an OpenAI Batch API request line.
type Record struct {
	// Line is the item's 1-based line (or row) number in the whole input,
	// across shards.
	Line int64
	// ID is the item's id: its id field, an OpenAI custom_id, or else the
	// line number.
	ID string
	// Texts are the texts to embed (one, except for an OpenAI request whose
	// input is a list); empty for a vector record.
	Texts []string
	// Vector is a record given as a vector.
	Vector []float32
	// Model and Dimensions override the job's for this record (an OpenAI
	// request's body); "" and 0 keep the job's.
	Model      string
	Dimensions int
	// Base64 is an OpenAI request's encoding_format "base64": its output
	// embeddings are base64 strings of little-endian float32s.
	Base64 bool
	// Err is why the record is unusable (a malformed line, a missing field,
	// invalid UTF-8, an empty text); the stage leaves it failed.
	Err string
}

// Neighbor is one search hit.
type Neighbor struct {
	ID    string
	Score float32
}

// Result is a stage's answer for one Record.
type Result struct {
	Line int64
	ID   string
	// Model is the model that ran; Tokens the tokens it read.
	Model  string
	Tokens int
	// Vectors are the embeddings, one per text (or the record's vector).
	Vectors [][]float32
	// Neighbors are a search's hits, best first.
	Neighbors []Neighbor
	// Base64 is the record's: OpenAI output lines give the embeddings as
	// base64.
	Base64 bool
	// Err, when not empty, means the record failed; the error file says so.
	Err string
}

// Stage turns a part's records into results: out[i] answers recs[i]
// (Line and ID already copied, Err already set for records that came in
// failed). It sets out[i].Err for a record that fails on its own and
// returns an error only for what stops the job (a missing model, a closed
// core, ctx's end). Stages run concurrently, one part each.
type Stage func(ctx context.Context, recs []Record, out []Result) error

// Shard is the part of the input one process runs: Index of Count.
type Shard struct{ Index, Count int }

// ParseShard reads "i/n".
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	sh := Shard{i, n}
	if !ok || err1 != nil || err2 != nil {
		return sh, fmt.Errorf("embedd/jobs: shard %q is not i/n", s)
	}
	return sh, sh.check()
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

func (s Shard) check() error {
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("embedd/jobs: shard %d/%d: want 0 <= i < n", s.Index, s.Count)
	}
	return nil
}

// Progress is a snapshot of a running job, for bars, logs and a server's
// request counts. Counts are the shard's and include resumed parts.
type Progress struct {
	// Read counts records read, Done records whose part is complete,
	// Failed the failed ones among them.
	Read, Done, Failed int64
	// Bytes is how far into the shard's input the reader is, of
	// TotalBytes (0 when unknown, as for stdin).
	Bytes, TotalBytes int64
	// Elapsed is the time since Run started.
	Elapsed time.Duration
	// Final marks the last call, when the job has stopped.
	Final bool
}

// Totals is what a finished (or stopped) job did.
type Totals struct {
	Read, Written, Failed int64
	// Resumed counts records of parts found complete in the job directory.
	Resumed int64
	Seconds float64
	// Capped says the output stopped at a cap (a pairs job's MaxPairs, or
	// its per-block bound).
	Capped bool
}

// Job is one run: where records come from, the stage, where results go.
type Job struct {
	// Kind names the job in the manifest ("embed", "search").
	Kind string
	// Params are the parameters that change the output (model, options,
	// collection, k); the manifest keeps them and a resume must match.
	Params map[string]string
	Input  Input
	Stage  Stage
	Output Output
	// Dir is the job directory; "" streams results straight to Output
	// (not resumable).
	Dir   string
	Shard Shard
	// PartSize is the records per part; default 1024.
	PartSize int
	// Workers is the parts in flight at once; default 4.
	Workers int
	// MaxErrors stops the job once this many records failed; 0: never.
	MaxErrors int64
	// Progress, if set, is called about every ProgressEvery (default 1s)
	// from Run's goroutine, and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// ErrMismatch is returned (wrapped) when a job directory belongs to another
// input or other parameters; the message says what differs.
var ErrMismatch = errors.New("embedd/jobs: the job directory belongs to another job")

// ErrTooManyErrors is returned (wrapped) when MaxErrors records failed.
var ErrTooManyErrors = errors.New("embedd/jobs: too many failed records")

// ErrIncomplete is returned (wrapped) by Merge when a shard has not
// finished.
var ErrIncomplete = errors.New("embedd/jobs: shard not complete")

func (j *Job) defaults() error {
	if j.PartSize == 0 {
		j.PartSize = 1024
	}
	if j.Workers == 0 {
		j.Workers = 4
	}
	if j.ProgressEvery == 0 {
		j.ProgressEvery = time.Second
	}
	if j.Shard.Count == 0 {
		j.Shard = Shard{0, 1}
	}
	if err := j.Shard.check(); err != nil {
		return err
	}
	if j.PartSize < 1 || j.Workers < 1 || j.MaxErrors < 0 {
		return fmt.Errorf("embedd/jobs: part size %d, workers %d, max errors %d: want positive", j.PartSize, j.Workers, j.MaxErrors)
	}
	if j.Stage == nil {
		return errors.New("embedd/jobs: no stage")
	}
	if j.Input.Path == "-" && (j.Dir != "" || j.Shard.Count > 1) {
		return errors.New("embedd/jobs: stdin cannot be resumed or sharded; give a file for --job-dir or --shard")
	}
	return nil
}

// create makes path's file under a temporary name in its directory; commit
// renames it into place. For "-" it writes stdout instead.
type atomicFile struct {
	f      *os.File
	path   string
	stdout io.Writer
}

func createAtomic(path string, stdout io.Writer) (*atomicFile, error) {
	if path == "-" || path == "" {
		if stdout == nil {
			stdout = os.Stdout
		}
		return &atomicFile{stdout: stdout}, nil
	}
	dir, base := splitPath(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: %w", err)
	}
	return &atomicFile{f: f, path: path}, nil
}

func splitPath(path string) (dir, base string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return ".", path
	}
	return path[:i+1], path[i+1:]
}

func (a *atomicFile) Write(p []byte) (int, error) {
	if a.f == nil {
		return a.stdout.Write(p)
	}
	return a.f.Write(p)
}

// file is the temporary file (nil for stdout), for writers that seek.
func (a *atomicFile) file() *os.File { return a.f }

// commit syncs and renames the file into place.
func (a *atomicFile) commit() error {
	if a.f == nil {
		return nil
	}
	err := a.f.Sync()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(a.f.Name(), a.path)
	}
	if err != nil {
		os.Remove(a.f.Name())
		return fmt.Errorf("embedd/jobs: writing %s: %w", a.path, err)
	}
	return nil
}

// abort removes the temporary file.
func (a *atomicFile) abort() {
	if a.f != nil {
		a.f.Close()
		os.Remove(a.f.Name())
	}
}
