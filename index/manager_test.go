package index

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
