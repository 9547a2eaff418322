package files

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func upload(t *testing.T, s *Store, owner, content string) File {
	t.Helper()
	u, err := s.NewUpload()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.ReadFrom(strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	f, err := u.Commit(owner, "in.jsonl", "batch")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func content(t *testing.T, s *Store, owner, id string) string {
	t.Helper()
	rd, _, err := s.Content(owner, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStoreKeepsFilesAcrossReopenPerOwner(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	a := upload(t, s, "alice", "hello\n")
	b := upload(t, s, "bob", "bob's\n")
	if a.Bytes != 6 || a.Object != "file" || a.Purpose != "batch" || a.Filename != "in.jsonl" || !strings.HasPrefix(a.ID, "file-") || len(a.ID) != 29 {
		t.Fatalf("file object %+v", a)
	}
	if _, err := s.Get("bob", a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob reads alice's file: %v", err)
	}
	if _, _, err := s.Content("bob", a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob opens alice's file: %v", err)
	}
	if err := s.Delete("bob", a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob deletes alice's file: %v", err)
	}
	if page, more := s.List("alice", ListOptions{}); len(page) != 1 || page[0].ID != a.ID || more {
		t.Errorf("alice lists %v %v", page, more)
	}

	// An interrupted upload and content without metadata are cleared at
	// Open; committed files survive.
	u, _ := s.NewUpload()
	u.ReadFrom(strings.NewReader("half"))
	os.WriteFile(filepath.Join(dir, NewID()), []byte("orphan"), 0o644)
	s, err = Open(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := content(t, s, "alice", a.ID); got != "hello\n" {
		t.Errorf("after reopen: %q", got)
	}
	if got := content(t, s, "bob", b.ID); got != "bob's\n" {
		t.Errorf("after reopen: %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("%d entries after reopen, want 4 (two files, two metadata)", len(ents))
	}
	if err := s.Delete("alice", a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("alice", a.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted file: %v", err)
	}
	if s, _ = Open(dir, 100); len(s.files) != 1 {
		t.Errorf("%d files after delete and reopen, want 1", len(s.files))
	}
}

func TestUploadOverTheLimitIsRefused(t *testing.T) {
	s, _ := Open(t.TempDir(), 10)
	u, _ := s.NewUpload()
	if _, err := u.ReadFrom(strings.NewReader("0123456789")); err != nil {
		t.Fatalf("exactly the limit: %v", err)
	}
	if _, err := u.ReadFrom(strings.NewReader("x")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over: %v", err)
	}
	u.Abort()
	if ents, _ := os.ReadDir(s.dir); len(ents) != 0 {
		t.Errorf("Abort left %d entries", len(ents))
	}
}

func TestAdoptIsIdempotent(t *testing.T) {
	s, _ := Open(t.TempDir(), 10)
	src := filepath.Join(t.TempDir(), "out")
	os.WriteFile(src, []byte("output"), 0o644)
	f, err := s.Adopt("o", "file-out", "out.jsonl", "batch_output", src)
	if err != nil || f.Bytes != 6 || f.Purpose != "batch_output" {
		t.Fatalf("Adopt: %+v %v", f, err)
	}
	if _, err := os.Stat(src); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the adopted file is still at its old path: %v", err)
	}
	os.WriteFile(src, []byte("output"), 0o644) // as a crash before the removal leaves it
	if g, err := s.Adopt("o", "file-out", "out.jsonl", "batch_output", src); err != nil || g != f {
		t.Fatalf("second Adopt: %+v %v, want %+v", g, err, f)
	}
	if got := content(t, s, "o", "file-out"); got != "output" {
		t.Errorf("content %q", got)
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	s, _ := Open(t.TempDir(), 10)
	var ids []string
	for range 5 {
		ids = append(ids, upload(t, s, "", "x").ID)
	}
	all, _ := s.List("", ListOptions{})
	p1, more := s.List("", ListOptions{Limit: 2})
	p2, more2 := s.List("", ListOptions{Limit: 2, After: p1[1].ID})
	p3, more3 := s.List("", ListOptions{Limit: 2, After: p2[1].ID})
	got := make([]string, len(all))
	for i, f := range all {
		got[i] = f.ID
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("List has %v, want the uploads %v", got, ids)
	}
	if len(all) != 5 || !more || !more2 || more3 || len(p3) != 1 || p1[0] != all[0] || p2[0] != all[2] || p3[0] != all[4] {
		t.Fatalf("pages %v %v %v of %v", p1, p2, p3, all)
	}
	if page, _ := s.List("", ListOptions{Purpose: "batch_output"}); len(page) != 0 {
		t.Errorf("purpose filter: %v", page)
	}
	if page, _ := s.List("", ListOptions{After: "file-unknown"}); len(page) != 0 {
		t.Errorf("unknown cursor: %v", page)
	}
}
