package index

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestManagerLifecycle(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Create("docs", Spec{Dim: 4, Metric: Cosine})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create("images_v2-b", Spec{Dim: 8, Metric: L2, Model: "clip-vit"}); err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, a, rec("x", testVec(4, 1)))
	if _, err := m.Create("docs", Spec{Dim: 4, Metric: Cosine}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate Create = %v", err)
	}
	if got := m.List(); !slices.Equal(got, []string{"docs", "images_v2-b"}) {
		t.Fatalf("List = %v", got)
	}
	if c, err := m.Get("docs"); err != nil || c != a {
		t.Fatalf("Get = %v, %v", c, err)
	}
	if _, err := m.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(nope) = %v", err)
	}
	if err := m.Drop("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Drop(nope) = %v", err)
	}
	s, _ := a.Snapshot()
	if err := m.Drop("docs"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "docs")); !os.IsNotExist(err) {
		t.Fatal("dropped collection's directory survived")
	}
	if err := a.Upsert(context.Background(), []Record{rec("y", testVec(4, 1))}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Upsert on a dropped collection = %v", err)
	}
	if r, ok := s.Lookup("x"); !ok || s.Row(r)[0] == 0 {
		t.Fatal("a snapshot taken before Drop is unreadable")
	}
	s.Close()
	// Recreate under the same name: empty.
	a, err = m.Create("docs", Spec{Dim: 4, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, a, rec("fresh", testVec(4, 2)))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := m.Get("docs"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}

	// Leftovers of crashed creates and drops, and directories that are not
	// collections.
	for _, d := range []string{".creating-half", ".dropped-old", "Not_A_Name", "nomanifest"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	var lb logBuffer
	m, err = OpenManager(dir, WithLogger(lb.logger()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.List(); !slices.Equal(got, []string{"docs", "images_v2-b"}) {
		t.Fatalf("List after reopen = %v", got)
	}
	if im, _ := m.Get("images_v2-b"); im.Spec() != (Spec{Dim: 8, Metric: L2, Model: "clip-vit"}) {
		t.Fatalf("reopened spec %+v", im.Spec())
	}
	d, _ := m.Get("docs")
	if d.Metric() != Dot {
		t.Fatalf("reopened docs has metric %v", d.Metric())
	}
	if _, ok, _ := d.Get("fresh"); !ok {
		t.Fatal("data lost across manager reopen")
	}
	for _, gone := range []string{".creating-half", ".dropped-old"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s survived OpenManager", gone)
		}
	}
	if !lb.contains("nomanifest") || !lb.contains("Not_A_Name") {
		t.Errorf("skipped directories not logged:\n%s", lb.String())
	}
}

func TestManagerRejectsBadNames(t *testing.T) {
	m, err := OpenManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, name := range []string{"", "Docs", "../x", "a/b", ".hidden", "..", "a b", "é", strings.Repeat("a", 65)} {
		if _, err := m.Create(name, Spec{Dim: 4, Metric: Dot}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "[a-z0-9_-]{1,64}") {
			t.Errorf("Create(%q) = %v, want ErrInvalid naming the rule", name, err)
		}
	}
	if _, err := m.Create(strings.Repeat("a", 64), Spec{Dim: 4, Metric: Dot}); err != nil {
		t.Errorf("64-character name: %v", err)
	}
	if _, err := m.Create("ok", Spec{Dim: 0, Metric: Dot}); !errors.Is(err, ErrInvalid) {
		t.Errorf("dim 0: %v", err)
	}
	if _, err := CollectionDir("/data", "../etc"); !errors.Is(err, ErrInvalid) {
		t.Errorf("CollectionDir with a path trick: %v", err)
	}
	if p, err := CollectionDir("/data", "docs"); err != nil || p != "/data/docs" {
		t.Errorf("CollectionDir = %q, %v", p, err)
	}
}

// TestDropDoesNotStallOtherCollections holds a dropped collection in its
// final checkpoint (the test takes its ckptMu, as a long fsync would) and
// checks that the manager's lock is free meanwhile: Get, List and Create
// on other collections go on, and the drop finishes once released.
func TestDropDoesNotStallOtherCollections(t *testing.T) {
	m, err := OpenManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	big, err := m.Create("big", Spec{Dim: 4, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	other, err := m.Create("other", Spec{Dim: 4, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, big, rec("x", testVec(4, 1))) // so Close has a checkpoint to make
	big.ckptMu.Lock()
	dropped := make(chan error, 1)
	go func() { dropped <- m.Drop("big") }()
	// Wait until the drop is inside big.Close (closed is set first, the
	// final checkpoint then waits for ckptMu).
	closing(big)
	free := m.mu.TryLock()
	if free {
		m.mu.Unlock()
	}
	if !free {
		big.ckptMu.Unlock()
		<-dropped
		t.Fatal("the manager's lock is held while a dropped collection closes")
	}
	if c, err := m.Get("other"); err != nil || c != other {
		t.Fatalf("Get(other) during the drop = %v, %v", c, err)
	}
	if _, err := m.Get("big"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(big) during its drop = %v, want ErrNotFound", err)
	}
	if err := m.Drop("big"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a second Drop(big) = %v, want ErrNotFound", err)
	}
	if _, err := m.Create("big", Spec{Dim: 4, Metric: Dot}); !errors.Is(err, ErrExists) {
		t.Fatalf("Create(big) during its drop = %v, want ErrExists", err)
	}
	if _, err := m.Create("third", Spec{Dim: 4, Metric: Dot}); err != nil {
		t.Fatalf("Create(third) during the drop: %v", err)
	}
	if got := m.List(); !slices.Equal(got, []string{"other", "third"}) {
		t.Fatalf("List during the drop = %v", got)
	}
	select {
	case err := <-dropped:
		t.Fatalf("Drop returned (%v) while its collection's checkpoint was held", err)
	default:
	}
	big.ckptMu.Unlock()
	if err := <-dropped; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.dir, "big")); !os.IsNotExist(err) {
		t.Fatalf("dropped directory: %v", err)
	}
}

// TestManagerCloseWaitsForDrop: a Close during a Drop waits for it, so that
// no file work goes on after Close returns.
func TestManagerCloseWaitsForDrop(t *testing.T) {
	m, err := OpenManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Create("a", Spec{Dim: 2, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, c, rec("x", []float32{1, 0}))
	c.ckptMu.Lock()
	dropped := make(chan error, 1)
	go func() { dropped <- m.Drop("a") }()
	closing(c)
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	waitUntil(func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.closed
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the Drop under way finished", err)
	default:
	}
	c.ckptMu.Unlock()
	if err := <-dropped; err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.dir, "a")); !os.IsNotExist(err) {
		t.Fatalf("dropped directory: %v", err)
	}
}

// waitUntil yields until cond holds.
func waitUntil(cond func() bool) {
	for !cond() {
		runtime.Gosched()
	}
}

// closing waits until c's Close has begun (it marks c closed first).
func closing(c *Collection) {
	waitUntil(func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.closed
	})
}

// TestOneBadCollectionDoesNotStopTheManager: a collection whose WAL is
// damaged in the middle used to fail OpenManager, and so the whole server.
// Now the others open; the bad one is unavailable with its reason, can be
// repaired (then Get finds it) or dropped.
func TestOneBadCollectionDoesNotStopTheManager(t *testing.T) {
	data := t.TempDir()
	for _, name := range []string{"bad", "good", "worse"} {
		c, err := Create(filepath.Join(data, name), Spec{Dim: 4, Metric: Dot}, WithCheckpointBytes(0))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			mustUpsert(t, c, rec(fmt.Sprint(i), testVec(4, float32(i))))
		}
		crashClose(t, c)
	}
	segs, _ := listSegments(filepath.Join(data, "bad"))
	offs, _ := recordOffsets(t, segs[0])
	flip(t, segs[0].path, offs[5]+walRecordHeaderSize+2)
	if err := os.WriteFile(filepath.Join(data, "worse", checkpointName), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}

	var lb logBuffer
	m, err := OpenManager(data, WithLogger(lb.logger()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.List(); !slices.Equal(got, []string{"good"}) {
		t.Fatalf("List = %v", got)
	}
	if c, err := m.Get("good"); err != nil || c.Stats().Live != 20 {
		t.Fatalf("Get(good) = %v, %v", c, err)
	}
	un := m.Unavailable()
	if len(un) != 2 || !errors.Is(un["bad"], ErrCorrupt) || !errors.Is(un["worse"], ErrCorrupt) {
		t.Fatalf("Unavailable = %v", un)
	}
	_, err = m.Get("bad")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), segs[0].path) {
		t.Fatalf("Get(bad) = %v, want ErrUnavailable wrapping the reason", err)
	}
	if !lb.contains("collection unavailable") {
		t.Errorf("no log line; log:\n%s", lb.String())
	}
	if _, err := m.Create("bad", Spec{Dim: 4, Metric: Dot}); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over an unavailable collection = %v", err)
	}
	if _, err := m.Repair("good"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Repair(good) = %v", err)
	}

	rep, err := m.Repair("bad")
	if err != nil || rep.Lost != 1 || rep.Replayed != 19 {
		t.Fatalf("Repair(bad) = %+v, %v", rep, err)
	}
	if c, err := m.Get("bad"); err != nil || c.Stats().Live != 19 {
		t.Fatalf("Get(bad) after repair = %v, %v", c, err)
	}
	// The WAL can be repaired; a garbage CHECKPOINT cannot: it stays
	// unavailable, with the reason, and can be dropped.
	if _, err := m.Repair("worse"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Repair(worse) = %v", err)
	}
	if _, err := m.Get("worse"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get(worse) after a failed repair = %v", err)
	}
	if err := m.Drop("worse"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get("worse"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(worse) after Drop = %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "worse")); !os.IsNotExist(err) {
		t.Fatalf("dropped directory: %v", err)
	}
	if got := m.List(); !slices.Equal(got, []string{"bad", "good"}) || len(m.Unavailable()) != 0 {
		t.Fatalf("List = %v, Unavailable = %v", got, m.Unavailable())
	}
}

// TestDropOfALockedUnavailableCollection: a collection unavailable because
// another writer holds it is not removed from under that writer.
func TestDropOfALockedUnavailableCollection(t *testing.T) {
	data := t.TempDir()
	other, err := Create(filepath.Join(data, "busy"), Spec{Dim: 2, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	m, err := OpenManager(data)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Get("busy"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrLocked) {
		t.Fatalf("Get(busy) = %v, want ErrUnavailable wrapping ErrLocked", err)
	}
	if err := m.Drop("busy"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Drop(busy) = %v, want ErrLocked", err)
	}
	if _, err := os.Stat(filepath.Join(data, "busy", manifestName)); err != nil {
		t.Fatalf("the other writer's collection: %v", err)
	}
	if _, err := m.Get("busy"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get(busy) after the refused Drop = %v", err)
	}
}

// TestRescanPicksUpCollectionsWrittenElsewhere: a collection another
// process created and released after the manager opened (embedd import)
// is opened by Rescan; one still held by its writer is left for later.
func TestRescanPicksUpCollectionsWrittenElsewhere(t *testing.T) {
	data := t.TempDir()
	m, err := OpenManager(data)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	held, err := Create(filepath.Join(data, "held"), Spec{Dim: 4, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	done, err := Create(filepath.Join(data, "done"), Spec{Dim: 4, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, done, rec("a", testVec(4, 1)))
	if err := done.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get("done"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Rescan: %v, want ErrNotFound", err)
	}
	opened, err := m.Rescan()
	if err != nil || !slices.Equal(opened, []string{"done"}) {
		t.Fatalf("Rescan = %v, %v; want [done] (held is still locked by its writer)", opened, err)
	}
	if c, err := m.Get("done"); err != nil || c.Stats().Live != 1 {
		t.Fatalf("Get(done) after Rescan = %v, %v", c, err)
	}
	if len(m.Unavailable()) != 0 {
		t.Fatalf("a held collection became unavailable: %v", m.Unavailable())
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	if opened, err := m.Rescan(); err != nil || !slices.Equal(opened, []string{"held"}) {
		t.Fatalf("Rescan after the writer let go = %v, %v; want [held]", opened, err)
	}
	if opened, err := m.Rescan(); err != nil || len(opened) != 0 {
		t.Fatalf("third Rescan = %v, %v; want nothing new", opened, err)
	}
}
