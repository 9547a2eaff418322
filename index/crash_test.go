package index

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test: this test binary, re-executed with crashEnv set, runs
// TestCrashHelper, which writes to a collection from several goroutines and
// prints every batch before it is sent ("B") and after it is acknowledged
// ("A"). The parent kills it with SIGKILL at a random moment, reopens the
// collection (read-only first, then as the writer, which recovers), and
// checks that every acknowledged write is there with its exact vector, the
// one batch each goroutine had in flight is there whole or not at all, no row
// anywhere is torn, and the collection takes new writes.

const (
	crashEnv      = "EMBEDD_INDEX_CRASH_HELPER"
	crashRoundEnv = "EMBEDD_INDEX_CRASH_ROUND"
	crashDim      = 8
	crashWorkers  = 4
	crashKeys     = 12 // ids per worker per round
)

// TestCrashHelper is the process TestCrashRecovery kills; it does nothing in
// a normal run.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashRecovery")
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	out := &lineWriter{w: os.Stdout}
	// Odd rounds leave compaction to the collection (WithAutoCompact) and
	// say when one has finished; even rounds call Compact all the time.
	auto := round%2 == 1
	compact := WithAutoCompact(0, 0)
	if auto {
		compact = WithAutoCompact(0.3, 0)
	}
	c, err := Open(dir, WithCheckpointBytes(24<<10), compact)
	if err != nil {
		out.printf("E open: %v", err)
		os.Exit(2)
	}
	out.printf("ready")
	stop := time.After(30 * time.Second) // a parent that never kills us
	var wg sync.WaitGroup
	for w := range crashWorkers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
			for i := 0; ; i++ {
				n := 1 + rng.IntN(3)
				keys := rng.Perm(crashKeys)[:n]
				var line strings.Builder
				if rng.IntN(5) == 0 {
					idList := make([]string, n)
					for j, k := range keys {
						idList[j] = crashID(round, w, k)
					}
					line.WriteString("d " + strings.Join(idList, ","))
					out.printf("B %s", line.String())
					if _, err := c.Delete(context.Background(), idList); err != nil {
						out.printf("E delete: %v", err)
						os.Exit(2)
					}
				} else {
					recs := make([]Record, n)
					line.WriteString("u ")
					for j, k := range keys {
						v := round<<16 | w<<14 | i%16384 // < 2^21: exact in float32 with quarter steps
						id := crashID(round, w, k)
						recs[j] = Record{ID: id, Vector: testVec(crashDim, float32(v)), Metadata: fmt.Appendf(nil, `{"v":%d}`, v), MetadataJSON: true}
						if j > 0 {
							line.WriteByte(',')
						}
						fmt.Fprintf(&line, "%s=%d", id, v)
					}
					out.printf("B %s", line.String())
					if err := c.Upsert(context.Background(), recs); err != nil {
						out.printf("E upsert: %v", err)
						os.Exit(2)
					}
				}
				out.printf("A %s", line.String())
			}
		})
	}
	go func() {
		for done := int64(0); ; {
			time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
			if auto {
				if n := c.Stats().Compactions; n > done {
					done = n
					out.printf("C %d", n)
				}
			} else if err := c.Compact(context.Background()); err != nil {
				out.printf("E compact: %v", err)
				os.Exit(2)
			}
		}
	}()
	<-stop
	os.Exit(3)
}

func crashID(round, worker, key int) string { return fmt.Sprintf("r%d-w%d-k%d", round, worker, key) }

// lineWriter writes each line with one write(2): a pipe never shows half of
// a line that short, even if the process dies right after.
type lineWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(fmt.Appendf(nil, format+"\n", args...))
}

// crashModel is what the parent knows: per id, the value of its last
// acknowledged write (absent: -1), and per worker the batch in flight.
type crashModel struct {
	confirmed map[string]int
}

type crashOp struct {
	del  bool
	ids  []string
	vals []int
}

func parseCrashOp(s string) (crashOp, error) {
	kind, rest, ok := strings.Cut(s, " ")
	if !ok {
		return crashOp{}, fmt.Errorf("bad op %q", s)
	}
	op := crashOp{del: kind == "d"}
	for _, part := range strings.Split(rest, ",") {
		if op.del {
			op.ids = append(op.ids, part)
			op.vals = append(op.vals, -1)
			continue
		}
		id, v, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			return crashOp{}, fmt.Errorf("bad op %q", s)
		}
		op.ids = append(op.ids, id)
		op.vals = append(op.vals, n)
	}
	return op, nil
}

func workerOf(id string) string {
	i := strings.LastIndex(id, "-k")
	return id[:i]
}

// observe reads every id the model knows from s, and checks every row s
// exposes (live or not) for tearing.
func observe(t *testing.T, s *Snapshot, m *crashModel) map[string]int {
	t.Helper()
	checkCrashRows(t, s)
	got := make(map[string]int, len(m.confirmed))
	live := 0
	for id := range m.confirmed {
		if row, ok := s.Lookup(id); ok {
			got[id] = int(s.Row(row)[0])
			live++
		} else {
			got[id] = -1
		}
	}
	if live != s.Live() {
		t.Fatalf("%d ids are live, the snapshot says %d rows are", live, s.Live())
	}
	return got
}

// checkCrashRows checks that every row s exposes is whole and that each live
// id has one live row, which Lookup finds.
func checkCrashRows(t *testing.T, s *Snapshot) {
	t.Helper()
	live := 0
	for r := range s.Len() {
		row := s.Row(r)
		meta, isJSON := s.Metadata(r)
		if !checkVec(row) || !isJSON || string(meta) != fmt.Sprintf(`{"v":%d}`, int(row[0])) {
			t.Fatalf("row %d (id %s) is torn: %v, metadata %s", r, s.ID(r), row, meta)
		}
		if !s.Deleted(r) {
			live++
			if got, ok := s.Lookup(s.ID(r)); !ok || got != r {
				t.Fatalf("id %s: live row %d, Lookup gives %d, %v", s.ID(r), r, got, ok)
			}
		}
	}
	if live != s.Live() {
		t.Fatalf("%d live rows, Live() = %d", live, s.Live())
	}
}

// settle checks what a reopened collection shows against the model and the
// batches in flight, and updates the model to it.
func (m *crashModel) settle(t *testing.T, got map[string]int, inflight map[string]crashOp) (acked int) {
	t.Helper()
	for _, op := range inflight {
		applied := -1 // unknown
		for i, id := range op.ids {
			before, after := m.confirmed[id], op.vals[i]
			if before == after {
				continue
			}
			var now int
			switch got[id] {
			case before:
				now = 0
			case after:
				now = 1
			default:
				t.Fatalf("id %s is %d; the last acknowledged write made it %d and the one in flight %d", id, got[id], before, after)
			}
			if applied >= 0 && now != applied {
				t.Fatalf("batch in flight %+v was applied in part", op)
			}
			applied = now
		}
		for _, id := range op.ids {
			m.confirmed[id] = got[id]
		}
	}
	for id, want := range m.confirmed {
		if got[id] != want {
			t.Fatalf("id %s is %d, but %d was acknowledged", id, got[id], want)
		}
		acked++
	}
	return acked
}

func TestCrashRecovery(t *testing.T) {
	rounds := 24
	if testing.Short() {
		rounds = 6
	}
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: crashDim, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	m := &crashModel{confirmed: map[string]int{}}
	start := time.Now()
	totalAcked, totalChecks, autoCompactions := 0, 0, 0
	for round := range rounds {
		lines, stderr := runCrashRound(t, dir, round)
		inflight := map[string]crashOp{}
		for _, line := range lines {
			switch {
			case strings.HasPrefix(line, "C "):
				autoCompactions++
			case strings.HasPrefix(line, "E "):
				t.Fatalf("round %d: helper failed: %s\n%s", round, line, stderr)
			case strings.HasPrefix(line, "B "), strings.HasPrefix(line, "A "):
				op, err := parseCrashOp(line[2:])
				if err != nil {
					t.Fatal(err)
				}
				w := workerOf(op.ids[0])
				if line[0] == 'B' {
					for _, id := range op.ids {
						if _, ok := m.confirmed[id]; !ok {
							m.confirmed[id] = -1
						}
					}
					inflight[w] = op
				} else {
					delete(inflight, w)
					for i, id := range op.ids {
						m.confirmed[id] = op.vals[i]
					}
					totalAcked++
				}
			}
		}
		// Read-only first: it must see every acknowledged write without
		// recovering anything.
		ro, err := OpenReadOnly(dir)
		if err != nil {
			t.Fatalf("round %d: OpenReadOnly after the kill: %v", round, err)
		}
		s, err := ro.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		roGot := observe(t, s, m)
		s.Close()
		ro.Close()

		c, err := Open(dir)
		if err != nil {
			t.Fatalf("round %d: Open after the kill: %v\nhelper stderr:\n%s", round, err, stderr)
		}
		s, err = c.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		got := observe(t, s, m)
		s.Close()
		for id, v := range roGot {
			if got[id] != v {
				t.Fatalf("round %d: id %s is %d read-only but %d after recovery", round, id, v, got[id])
			}
		}
		totalChecks += m.settle(t, got, inflight)
		// The collection takes writes.
		probe := fmt.Sprintf("probe-%d", round)
		v := 2000000 + round
		if err := c.Upsert(context.Background(), []Record{{ID: probe, Vector: testVec(crashDim, float32(v)), Metadata: fmt.Appendf(nil, `{"v":%d}`, v), MetadataJSON: true}}); err != nil {
			t.Fatalf("round %d: write after recovery: %v", round, err)
		}
		m.confirmed[probe] = v
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d lines, %d batches in flight, %d ids checked", round, len(lines), len(inflight), len(m.confirmed))
	}
	t.Logf("%d rounds in %v: %d acknowledged batches, %d id checks, %d automatic compactions seen", rounds, time.Since(start).Round(time.Millisecond), totalAcked, totalChecks, autoCompactions)
	if totalAcked < rounds {
		t.Fatalf("only %d batches were acknowledged in %d rounds; the helper barely ran", totalAcked, rounds)
	}
	if autoCompactions == 0 {
		t.Fatalf("no automatic compaction finished in the %d rounds that left it to the collection", rounds/2)
	}
}

// runCrashRound runs the helper and kills it: mostly some time after it is
// ready, sometimes while it is still opening (recovering).
func runCrashRound(t *testing.T, dir string, round int) (lines []string, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan []string)
	go func() {
		var got []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			got = append(got, sc.Text())
			if sc.Text() == "ready" {
				close(ready)
			}
		}
		done <- got
	}()
	if round%5 == 4 {
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond) // maybe mid-recovery
	} else {
		select {
		case <-ready:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: the helper never got ready\n%s", round, errBuf.String())
		}
		time.Sleep(time.Duration(30+rand.IntN(200)) * time.Millisecond)
		// A read-only opener beside the live writer (which checkpoints and
		// compacts all the time) gets a whole, consistent state.
		ro, err := OpenReadOnly(dir)
		if err != nil {
			cmd.Process.Kill()
			t.Fatalf("round %d: OpenReadOnly beside a live writer: %v", round, err)
		}
		s, err := ro.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		checkCrashRows(t, s)
		s.Close()
		ro.Close()
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL) // an error means it already exited; Wait says how
	lines = <-done
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: helper ended with %v, not by our SIGKILL\n%s", round, err, errBuf.String())
	}
	return lines, errBuf.String()
}
