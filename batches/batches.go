// Package batches runs OpenAI's Batch API for embeddings: a batch is an
// uploaded JSONL file of /v1/embeddings requests (core/files), run as one
// job of package jobs in the bulk lane of the core's batcher (behind every
// interactive call), with its state, progress and results in the data dir.
//
// Life of a batch: Create checks the request and copies the input file into
// the batch's directory (so deleting the upload does not disturb it), and
// the batch is "validating". One runner goroutine takes batches in order
// of creation: it validates every input line up front (JSON, custom_id
// unique and present, method POST, url /v1/embeddings, a known model), and
// a file with errors ends "failed" with them in Batch.Errors; otherwise the
// batch goes "in_progress" and runs as a job whose directory keeps its
// parts, then "finalizing" while the output and error files are moved into
// the file store, then "completed". Cancel makes it "cancelling", then
// "cancelled"; a batch that outlives its 24h window ends "expired". As
// OpenAI's, a batch stopped while it ran keeps what it had done: its output
// and error files hold the requests of the job's complete parts, in input
// order (the parts in flight, up to 256 requests each, are lost), and its
// request counts count those.
//
// Durability: state.json (the batch object, its owner and its reserved
// output ids) is replaced atomically at every change of status and every
// few seconds of progress. A process killed at any moment resumes at Open:
// batches not ended run again from the job's parts already written, and
// their output is the same as an uninterrupted run's (its line ids derive
// from line numbers).
//
// Layout of a batch's directory:
//
//	state.json     the batch object, its owner, its reserved output file ids
//	input.jsonl    a copy of the input file
//	job/           the job's directory (package jobs): manifest and parts
//	output.jsonl   the output and error files, until the file store
//	errors.jsonl   adopts them under the reserved ids
package batches

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/core/batch"
	"github.com/embedd/embedd/core/files"
	"github.com/embedd/embedd/jobs"
	"github.com/embedd/embedd/models"
)

// The statuses of a batch, as OpenAI names them.
const (
	StatusValidating = "validating"
	StatusFailed     = "failed"
	StatusInProgress = "in_progress"
	StatusFinalizing = "finalizing"
	StatusCompleted  = "completed"
	StatusExpired    = "expired"
	StatusCancelling = "cancelling"
	StatusCancelled  = "cancelled"
)

// Endpoint is the one endpoint batches run.
const Endpoint = "/v1/embeddings"

// Window is the one completion window.
const Window = 24 * time.Hour

// Errors of the Manager, wrapped with details.
var (
	// ErrNotFound is a batch id that does not exist or is another owner's.
	ErrNotFound = errors.New("embedd/batches: no such batch")
	// ErrInvalid is a create request at fault; the message names the field.
	ErrInvalid = errors.New("embedd/batches: invalid request")
	// ErrState is a cancel of a batch that has ended.
	ErrState = errors.New("embedd/batches: batch has ended")
)

// RequestCounts are a batch's request totals.
type RequestCounts struct {
	Total     int64 `json:"total"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
}

// LineError is one validation error, as OpenAI reports it.
type LineError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int64  `json:"line"`
}

// ErrorList is OpenAI's list of a batch's validation errors.
type ErrorList struct {
	Object string      `json:"object"`
	Data   []LineError `json:"data"`
}

// Batch is OpenAI's batch object.
type Batch struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Errors           *ErrorList        `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        int64             `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    RequestCounts     `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`
}

// ended reports whether b's status is final.
func (b *Batch) ended() bool {
	switch b.Status {
	case StatusFailed, StatusCompleted, StatusExpired, StatusCancelled:
		return true
	}
	return false
}

// state is what state.json holds.
type state struct {
	Batch
	Owner string `json:"owner"`
	// Seq orders batches by creation (CreatedAt has seconds only).
	Seq int64 `json:"seq"`
	// OutputID and ErrorID are the file ids reserved for the results, so
	// that finalizing again after a crash finds what it stored before.
	OutputID string `json:"reserved_output_file_id"`
	ErrorID  string `json:"reserved_error_file_id"`
}

// CreateRequest is the body of POST /v1/batches.
type CreateRequest struct {
	InputFileID      string            `json:"input_file_id"`
	Endpoint         string            `json:"endpoint"`
	CompletionWindow string            `json:"completion_window"`
	Metadata         map[string]string `json:"metadata"`
}

// Manager keeps and runs the batches in a directory. Open it with Open and
// Close it before closing the core.
type Manager struct {
	dir   string
	core  *core.Core
	files *files.Store
	log   *slog.Logger

	ctx    context.Context // ends at Close
	stop   context.CancelFunc
	wake   chan struct{}
	wg     sync.WaitGroup
	expiry time.Duration // Window, shorter in tests

	mu      sync.Mutex
	batches map[string]*state
	nextSeq int64
	cancel  map[string]context.CancelFunc // of the batch running
}

// Open loads the batches in dir and starts the runner, which resumes the
// batches that had not ended. c runs them; fs holds their input and
// output files.
func Open(dir string, c *core.Core, fs *files.Store, log *slog.Logger) (*Manager, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedd/batches: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("embedd/batches: %w", err)
	}
	m := &Manager{dir: dir, core: c, files: fs, log: log, wake: make(chan struct{}, 1), expiry: Window,
		batches: map[string]*state{}, cancel: map[string]context.CancelFunc{}}
	for _, e := range ents {
		var st state
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "state.json"))
		if errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(filepath.Join(dir, e.Name())) // a Create that did not finish
			continue
		}
		if err == nil {
			err = json.Unmarshal(data, &st)
		}
		if err != nil {
			return nil, fmt.Errorf("embedd/batches: batch %s: %w", e.Name(), err)
		}
		m.batches[st.ID] = &st
		m.nextSeq = max(m.nextSeq, st.Seq+1)
	}
	m.ctx, m.stop = context.WithCancel(context.Background())
	m.wg.Go(m.run)
	return m, nil
}

// Close stops the runner; a batch running stays in progress and resumes
// at the next Open.
func (m *Manager) Close() {
	m.stop()
	m.wg.Wait()
}

// Create validates req, copies its input file into a new batch and queues
// it.
func (m *Manager) Create(owner string, req CreateRequest) (Batch, error) {
	switch {
	case req.InputFileID == "":
		return Batch{}, fmt.Errorf("%w: input_file_id: is required", ErrInvalid)
	case req.Endpoint != Endpoint:
		return Batch{}, fmt.Errorf("%w: endpoint: %q is not supported; embedd runs batches of %s", ErrInvalid, req.Endpoint, Endpoint)
	case req.CompletionWindow != "24h":
		return Batch{}, fmt.Errorf("%w: completion_window: %q is not supported; use 24h", ErrInvalid, req.CompletionWindow)
	case len(req.Metadata) > 16:
		return Batch{}, fmt.Errorf("%w: metadata: %d keys is over the limit of 16", ErrInvalid, len(req.Metadata))
	}
	for k, v := range req.Metadata {
		if len(k) > 64 || len(v) > 512 {
			return Batch{}, fmt.Errorf("%w: metadata: keys are at most 64 characters and values 512", ErrInvalid)
		}
	}
	rd, _, err := m.files.Content(owner, req.InputFileID)
	if err != nil {
		return Batch{}, err
	}
	defer rd.Close()
	now := time.Now()
	st := &state{Owner: owner, OutputID: files.NewID(), ErrorID: files.NewID(), Batch: Batch{
		ID: "batch_" + strings.TrimPrefix(files.NewID(), "file-"), Object: "batch", Endpoint: Endpoint,
		InputFileID: req.InputFileID, CompletionWindow: req.CompletionWindow, Status: StatusValidating,
		CreatedAt: now.Unix(), ExpiresAt: now.Add(m.expiry).Unix(), Metadata: req.Metadata,
	}}
	bdir := filepath.Join(m.dir, st.ID)
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return Batch{}, fmt.Errorf("embedd/batches: %w", err)
	}
	// A copy keeps the batch's input whatever happens to the upload.
	if err := copyFile(filepath.Join(bdir, "input.jsonl"), rd); err != nil {
		os.RemoveAll(bdir)
		return Batch{}, err
	}
	m.mu.Lock()
	st.Seq = m.nextSeq
	m.nextSeq++
	err = m.saveLocked(st)
	if err == nil {
		m.batches[st.ID] = st
	}
	b := st.Batch // the runner may change st once the lock is free
	m.mu.Unlock()
	if err != nil {
		os.RemoveAll(bdir)
		return Batch{}, err
	}
	m.signal()
	return b, nil
}

// copyFile writes rd to path durably.
func copyFile(path string, rd io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("embedd/batches: %w", err)
	}
	_, err = io.Copy(f, rd)
	err = errors.Join(err, f.Sync(), f.Close())
	if err != nil {
		return fmt.Errorf("embedd/batches: copying the input file: %w", err)
	}
	return nil
}

// Get returns owner's batch id.
func (m *Manager) Get(owner, id string) (Batch, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.lookupLocked(owner, id)
	if err != nil {
		return Batch{}, err
	}
	return st.Batch, nil
}

// lookupLocked is owner's batch id; ErrNotFound for another owner's.
func (m *Manager) lookupLocked(owner, id string) (*state, error) {
	st, ok := m.batches[id]
	if !ok || st.Owner != owner {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return st, nil
}

// List returns up to limit of owner's batches, newest first, after the
// batch id after (none: from the newest), and whether more follow.
func (m *Manager) List(owner, after string, limit int) ([]Batch, bool) {
	m.mu.Lock()
	var all []*state
	for _, st := range m.batches {
		if st.Owner == owner {
			all = append(all, st)
		}
	}
	slices.SortFunc(all, func(a, b *state) int { return cmp.Compare(b.Seq, a.Seq) })
	if after != "" {
		i := slices.IndexFunc(all, func(st *state) bool { return st.ID == after })
		if i < 0 {
			all = nil
		} else {
			all = all[i+1:]
		}
	}
	more := len(all) > limit
	all = all[:min(limit, len(all))]
	out := make([]Batch, len(all))
	for i, st := range all {
		out[i] = st.Batch
	}
	m.mu.Unlock()
	return out, more
}

// Statuses lists every status a batch can have, in the order a batch goes
// through them.
var Statuses = []string{StatusValidating, StatusInProgress, StatusFinalizing, StatusCompleted,
	StatusFailed, StatusExpired, StatusCancelling, StatusCancelled}

// Progress is every owner's batches together, for metrics.
type Progress struct {
	// ByStatus counts the batches in each status.
	ByStatus map[string]int
	// Requests sums the batches' request counts.
	Requests RequestCounts
}

// Progress reports every batch of every owner, summed.
func (m *Manager) Progress() Progress {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := Progress{ByStatus: make(map[string]int, len(Statuses))}
	for _, st := range m.batches {
		p.ByStatus[st.Status]++
		p.Requests.Total += st.RequestCounts.Total
		p.Requests.Completed += st.RequestCounts.Completed
		p.Requests.Failed += st.RequestCounts.Failed
	}
	return p
}

// Cancel asks owner's batch id to stop: "cancelling" until the runner has
// stopped it, then "cancelled"; a batch not yet started is cancelled at
// once.
func (m *Manager) Cancel(owner, id string) (Batch, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := m.lookupLocked(owner, id)
	if err != nil {
		return Batch{}, err
	}
	if st.Status == StatusCancelling {
		return st.Batch, nil
	}
	if st.ended() {
		return Batch{}, fmt.Errorf("%w: batch %s is %s and cannot be cancelled", ErrState, id, st.Status)
	}
	now := time.Now().Unix()
	st.Status, st.CancellingAt = StatusCancelling, &now
	if stop, running := m.cancel[id]; running {
		stop()
	} else {
		st.Status, st.CancelledAt = StatusCancelled, &now
	}
	return st.Batch, m.saveLocked(st)
}

// saveLocked writes st's state.json.
func (m *Manager) saveLocked(st *state) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("embedd/batches: %w", err)
	}
	return files.WriteFileAtomic(filepath.Join(m.dir, st.ID, "state.json"), data)
}

// update changes batch id under the lock and saves it.
func (m *Manager) update(id string, f func(st *state)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.batches[id]
	f(st)
	return m.saveLocked(st)
}

func (m *Manager) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run takes batches that have not ended, oldest first, until Close.
func (m *Manager) run() {
	for {
		id, ctx, ok := m.next()
		if !ok {
			select {
			case <-m.wake:
				continue
			case <-m.ctx.Done():
				return
			}
		}
		m.process(ctx, id)
		m.mu.Lock()
		delete(m.cancel, id)
		m.mu.Unlock()
		if m.ctx.Err() != nil {
			return
		}
	}
}

// next picks the oldest batch still to run and registers its cancel.
func (m *Manager) next() (string, context.Context, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var pick *state
	for _, st := range m.batches {
		if !st.ended() && (pick == nil || st.Seq < pick.Seq) {
			pick = st
		}
	}
	if pick == nil {
		return "", nil, false
	}
	ctx, cancel := context.WithDeadline(m.ctx, time.Unix(pick.ExpiresAt, 0))
	m.cancel[pick.ID] = cancel
	if pick.Status == StatusCancelling {
		cancel()
	}
	return pick.ID, ctx, true
}

// process runs batch id from where it stands to its end, or until the
// manager closes (leaving it to resume).
func (m *Manager) process(ctx context.Context, id string) {
	m.mu.Lock()
	st := *m.batches[id]
	m.mu.Unlock()
	bdir := filepath.Join(m.dir, id)
	err := ctx.Err()
	if err == nil && st.Status == StatusValidating {
		err = m.validate(id, filepath.Join(bdir, "input.jsonl"))
	}
	var tot jobs.Totals
	ran := false
	if err == nil {
		tot, ran, err = m.runJob(ctx, id, bdir)
	}
	if err == nil && ran {
		err = m.finalize(id, bdir, tot, "")
	}
	now := time.Now().Unix()
	switch {
	case err == nil:
	case m.ctx.Err() != nil:
		return // closing: resume at the next Open
	case errors.Is(err, context.DeadlineExceeded):
		err = m.stopped(id, bdir, StatusExpired)
	case errors.Is(err, context.Canceled):
		err = m.stopped(id, bdir, StatusCancelled)
	default:
		m.log.Error("embedd/batches: batch failed", "batch", id, "err", err)
		err = m.update(id, func(st *state) {
			st.Status, st.FailedAt = StatusFailed, &now
			st.Errors = &ErrorList{Object: "list", Data: []LineError{{Code: "server_error", Message: err.Error()}}}
		})
	}
	if err != nil {
		m.log.Error("embedd/batches: saving a batch's state", "batch", id, "err", err)
	}
}

// stopped ends a batch whose job was stopped (cancelled, or out of its
// window) with status: as OpenAI does, its output and error files hold the
// requests done by then (in parts already complete), if any.
func (m *Manager) stopped(id, bdir, status string) error {
	job := m.job(id, bdir)
	if _, err := os.Stat(job.Dir); err != nil {
		now := time.Now().Unix()
		return m.update(id, func(st *state) { st.end(status, now) }) // the job never started
	}
	tot, err := jobs.Partial(job)
	if err != nil {
		return err
	}
	return m.finalize(id, bdir, tot, status)
}

// end sets a stopped batch's status and its time.
func (st *state) end(status string, now int64) {
	if status == StatusExpired {
		st.Status, st.ExpiredAt = StatusExpired, &now
	} else {
		st.Status, st.CancelledAt = StatusCancelled, &now
	}
}

// maxLineErrors bounds the validation errors a batch reports.
const maxLineErrors = 100

// validate checks every line of the input up front; a file with errors
// fails the batch (and validate returns nil: the batch has ended), a good
// one puts it in progress with its total.
func (m *Manager) validate(id, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("embedd/batches: %w", err)
	}
	defer f.Close()
	known := map[string]bool{} // model names seen, and whether the core has them
	var errs []LineError
	fail := func(line int64, code, param, msg string) {
		if len(errs) < maxLineErrors {
			e := LineError{Code: code, Message: msg, Line: &line}
			if param != "" {
				e.Param = &param
			}
			errs = append(errs, e)
		}
	}
	seen := map[string]bool{}
	var n int64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		n++
		if len(strings.TrimSpace(string(line))) == 0 {
			fail(n, "invalid_json_line", "", "This line is empty; each line must be a JSON request.")
			continue
		}
		var req struct {
			CustomID *string `json:"custom_id"`
			Method   *string `json:"method"`
			URL      *string `json:"url"`
			Body     *struct {
				Model string          `json:"model"`
				Input json.RawMessage `json:"input"`
			} `json:"body"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			fail(n, "invalid_json_line", "", "This line is not parseable as valid JSON.")
			continue
		}
		switch {
		case req.CustomID == nil || req.Method == nil || req.URL == nil || req.Body == nil:
			fail(n, "missing_required_parameter", "", "Each request needs custom_id, method, url and body.")
		case *req.Method != "POST":
			fail(n, "invalid_method", "method", fmt.Sprintf("The method %q is not supported for this batch: only POST is.", *req.Method))
		case *req.URL != Endpoint:
			fail(n, "invalid_url", "url", fmt.Sprintf("The URL %q does not match the endpoint of the batch (%s).", *req.URL, Endpoint))
		case seen[*req.CustomID]:
			fail(n, "duplicate_custom_id", "custom_id", fmt.Sprintf("The custom_id %q is a duplicate of another request's; custom_id must be unique for each request in a batch.", *req.CustomID))
		case !m.knownModel(known, req.Body.Model):
			fail(n, "model_not_found", "body.model", fmt.Sprintf("The model %q is not served here.", req.Body.Model))
		}
		if req.CustomID != nil {
			seen[*req.CustomID] = true
		}
	}
	if err := sc.Err(); err != nil {
		fail(n+1, "invalid_json_line", "", "This line could not be read: "+err.Error())
	}
	if n == 0 {
		errs = append(errs, LineError{Code: "empty_file", Message: "The batch input file is empty."})
	}
	now := time.Now().Unix()
	return m.update(id, func(st *state) {
		if len(errs) > 0 {
			st.Status, st.FailedAt = StatusFailed, &now
			st.Errors = &ErrorList{Object: "list", Data: errs}
			return
		}
		if st.Status == StatusValidating { // not cancelling
			st.Status, st.InProgressAt = StatusInProgress, &now
		}
		st.RequestCounts.Total = n
	})
}

// knownModel reports whether the core serves model name, remembering the
// answer in known.
func (m *Manager) knownModel(known map[string]bool, name string) bool {
	ok, seen := known[name]
	if !seen {
		_, err := m.core.ModelID(name)
		ok = err == nil
		known[name] = ok
	}
	return ok
}

// progressEvery is how often a running batch's counts are saved.
const progressEvery = 2 * time.Second

// partSize is the requests per part of a batch's job: what a kill can
// cost to compute again.
const partSize = 256

// runJob runs (or resumes) the batch's job in the core's bulk lane, until
// its output and error files are complete in bdir; after a crash while
// finalizing, it assembles them again from the job's parts. ran is false
// for a batch that has ended (validation failed).
func (m *Manager) runJob(ctx context.Context, id, bdir string) (_ jobs.Totals, ran bool, _ error) {
	m.mu.Lock()
	ended := m.batches[id].ended()
	m.mu.Unlock()
	if ended {
		return jobs.Totals{}, false, nil
	}
	tot, err := jobs.Run(batch.WithBulk(ctx), m.job(id, bdir))
	if err != nil && ctx.Err() != nil {
		return tot, true, context.Cause(ctx)
	}
	return tot, true, err
}

// job is batch id's job, its files in bdir.
func (m *Manager) job(id, bdir string) jobs.Job {
	var lastSave time.Time
	return jobs.Job{
		Kind:     "openai-batch",
		Params:   map[string]string{"normalize": "true"},
		Input:    jobs.Input{Path: filepath.Join(bdir, "input.jsonl"), Format: jobs.InputOpenAI},
		Stage:    jobs.EmbedStage(m.core, jobs.EmbedOptions{Options: models.Options{Normalize: models.NormalizeOn}, CountTokens: true}),
		Output:   jobs.Output{Path: filepath.Join(bdir, "output.jsonl"), Format: jobs.OutputOpenAI, ErrorsPath: filepath.Join(bdir, "errors.jsonl")},
		Dir:      filepath.Join(bdir, "job"),
		PartSize: partSize,
		Progress: func(p jobs.Progress) {
			m.mu.Lock()
			st := m.batches[id]
			st.RequestCounts.Completed, st.RequestCounts.Failed = p.Done-p.Failed, p.Failed
			if time.Since(lastSave) >= progressEvery {
				lastSave = time.Now()
				if err := m.saveLocked(st); err != nil {
					m.log.Warn("embedd/batches: saving progress", "batch", id, "err", err)
				}
			}
			m.mu.Unlock()
		},
	}
}

// finalize moves the batch's output and error files into the file store
// under their reserved ids (again after a crash: Adopt is idempotent) and
// ends the batch: completed, or cancelled when a cancel came too late to
// stop the job; with stopped (StatusCancelled, StatusExpired) the job was
// stopped and the files hold what it had done.
func (m *Manager) finalize(id, bdir string, tot jobs.Totals, stopped string) error {
	m.mu.Lock()
	st := *m.batches[id]
	m.mu.Unlock()
	now := time.Now().Unix()
	if stopped == "" {
		if err := m.update(id, func(st *state) {
			if st.Status != StatusCancelling {
				st.Status = StatusFinalizing
			}
			st.FinalizingAt = cmp.Or(st.FinalizingAt, &now)
		}); err != nil {
			return err
		}
	}
	adopt := func(n int64, fid, name, path string) (*string, error) {
		if n == 0 {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("embedd/batches: %w", err)
			}
			return nil, nil
		}
		_, err := m.files.Adopt(st.Owner, fid, id+name, "batch_output", path)
		return &fid, err
	}
	out, err := adopt(tot.Written, st.OutputID, "_output.jsonl", filepath.Join(bdir, "output.jsonl"))
	if err != nil {
		return err
	}
	errf, err := adopt(tot.Failed, st.ErrorID, "_error.jsonl", filepath.Join(bdir, "errors.jsonl"))
	if err != nil {
		return err
	}
	if err := m.update(id, func(st *state) {
		switch {
		case stopped != "":
			st.end(stopped, now)
		case st.Status == StatusCancelling:
			st.Status, st.CancelledAt = StatusCancelled, &now
		default:
			st.Status, st.CompletedAt = StatusCompleted, &now
		}
		st.OutputFileID, st.ErrorFileID = out, errf
		st.RequestCounts.Completed, st.RequestCounts.Failed = tot.Written, tot.Failed
	}); err != nil {
		return err
	}
	// The results are in the store now; the parts and the input copy can go.
	if err := errors.Join(os.RemoveAll(filepath.Join(bdir, "job")), os.Remove(filepath.Join(bdir, "input.jsonl"))); err != nil {
		m.log.Warn("embedd/batches: removing a finished batch's parts", "batch", id, "err", err)
	}
	return nil
}
