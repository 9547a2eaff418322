package batches

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/core/files"
	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/models/modelstest"
)

var (
	testReg    *models.Registry
	skipReason string
)

func TestMain(m *testing.M) {
	var err error
	testReg, err = models.OpenRegistry(models.RegistryConfig{Models: []models.Config{models.DefaultRegistryConfig().Models[0]}}, slog.New(slog.DiscardHandler))
	skipReason = modelstest.Missing(err)
	os.Exit(modelstest.Finish(m.Run(), testReg))
}

// env is a core, a file store and a data dir for managers.
type env struct {
	core  *core.Core
	files *files.Store
	dir   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	c, err := core.Open(core.Config{Models: []core.ModelConfig{{Config: models.Config{ID: models.DefaultModelID, Path: "unused: WithRegistry"}}}},
		core.WithRegistry(testReg), core.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	dir := t.TempDir()
	fs, err := files.Open(filepath.Join(dir, "files"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return &env{core: c, files: fs, dir: filepath.Join(dir, "batches")}
}

// open opens a manager over e, closed when t ends (Close is idempotent
// enough: a second one waits for nothing).
func (e *env) open(t *testing.T) *Manager {
	t.Helper()
	m, err := Open(e.dir, e.core, e.files, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// submit stores n request lines and creates a batch of them.
func (e *env) submit(t *testing.T, m *Manager, n int) Batch {
	t.Helper()
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `{"custom_id": "r%d", "method": "POST", "url": "/v1/embeddings", "body": {"input": "text %d"}}`+"\n", i, i)
	}
	up, _ := e.files.NewUpload()
	up.ReadFrom(strings.NewReader(sb.String()))
	f, err := up.Commit("o", "in.jsonl", "batch")
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Create("o", CreateRequest{InputFileID: f.ID, Endpoint: Endpoint, CompletionWindow: "24h"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wait polls batch id until it ends (at most a minute).
func wait(t *testing.T, m *Manager, id string) Batch {
	t.Helper()
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(5 * time.Millisecond) {
		b, err := m.Get("o", id)
		if err != nil {
			t.Fatal(err)
		}
		if b.ended() {
			return b
		}
	}
	t.Fatalf("batch %s did not end within a minute", id)
	return Batch{}
}

func TestBatchPastItsWindowExpires(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	m.expiry = 0
	b := wait(t, m, e.submit(t, m, 3).ID)
	if b.Status != StatusExpired || b.ExpiredAt == nil || b.OutputFileID != nil {
		t.Fatalf("batch %+v, want expired without output", b)
	}
}

// TestReopenResumesBatchesAndKeepsCancels closes a manager with one batch
// queued or running and one cancelled, and opens another on the same
// directory: the first completes, the second stays cancelled.
func TestReopenResumesBatchesAndKeepsCancels(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	run := e.submit(t, m, 300)
	stop := e.submit(t, m, 5)
	if b, err := m.Cancel("o", stop.ID); err != nil || (b.Status != StatusCancelled && b.Status != StatusCancelling) {
		t.Fatalf("cancel: %+v %v", b, err)
	}
	if _, err := m.Cancel("x", stop.ID); err == nil {
		t.Error("another owner cancelled the batch")
	}
	m.Close()
	m = e.open(t)
	if b := wait(t, m, run.ID); b.Status != StatusCompleted || b.RequestCounts != (RequestCounts{Total: 300, Completed: 300}) || b.OutputFileID == nil {
		t.Fatalf("resumed batch %+v", b)
	}
	if b := wait(t, m, stop.ID); b.Status != StatusCancelled || b.CancelledAt == nil {
		t.Fatalf("cancelled batch after reopen %+v", b)
	}
	if page, more := m.List("o", "", 1); len(page) != 1 || page[0].ID != stop.ID || !more {
		t.Errorf("List newest first: %v %v", page, more)
	}
	if page, _ := m.List("o", stop.ID, 10); len(page) != 1 || page[0].ID != run.ID {
		t.Errorf("List after: %v", page)
	}
}
