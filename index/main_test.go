package index

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The helper processes (crash and RSS tests) are this binary too.
	if os.Getenv(crashEnv) != "" || os.Getenv(rssEnv) != "" {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// testCollection creates a collection in a temporary directory, closed when
// the test ends.
func testCollection(t testing.TB, dim int, metric Metric, opts ...Option) *Collection {
	t.Helper()
	c, err := Create(t.TempDir(), Spec{Dim: dim, Metric: metric}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// testVec returns a dim-vector whose components are v, v+1/4, v+2/4, …: exact in
// float32, and a row whose components disagree is torn.
func testVec(dim int, v float32) []float32 {
	out := make([]float32, dim)
	for j := range out {
		out[j] = v + float32(j)/4
	}
	return out
}

// checkVec reports whether x is testVec(len(x), x[0]).
func checkVec(x []float32) bool {
	for j := range x {
		if x[j] != x[0]+float32(j)/4 {
			return false
		}
	}
	return true
}

func mustUpsert(t testing.TB, c *Collection, recs ...Record) {
	t.Helper()
	if err := c.Upsert(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

func rec(id string, v []float32) Record { return Record{ID: id, Vector: v} }

// crashClose stops c as a crash would: no final checkpoint, files left as
// they are (everything acknowledged is in the WAL).
func crashClose(t testing.TB, c *Collection) {
	t.Helper()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	close(c.quit)
	<-c.ckptDone
	req := &commitReq{done: make(chan error, 1)}
	c.wal.reqs <- req
	<-req.done
	close(c.wal.reqs)
	<-c.wal.exited
	c.cur.Store(nil)
	if err := c.gen.release(); err != nil {
		t.Error(err)
	}
	c.lock.Close()
}

// logBuffer is a slog handler's destination that tests read.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func (l *logBuffer) contains(s string) bool { return strings.Contains(l.String(), s) }

func ids(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}
