// Package files is the durable file store behind OpenAI's Files API:
// uploaded batch inputs and the output and error files of batches, each
// with its metadata, in one directory.
//
// A file is two entries: ID (the content) and ID.json (the metadata, the
// commit point). An upload streams into a temporary file (never whole in
// memory), bounded by a size limit; Commit fsyncs it, renames it to its
// ID, writes the metadata the same way (temporary name, fsync, rename) and
// fsyncs the directory. Open removes what a crash left half-made: temporary
// files, and content without metadata. Delete removes the metadata first.
//
// Every file has an owner (a string the caller picks, such as a hash of
// the API key, or "" for everyone): an owner sees and deletes only its own
// files, and another owner's ids are not found.
package files

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors the Store returns, wrapped with the details.
var (
	// ErrNotFound is an id that does not exist or belongs to another owner.
	ErrNotFound = errors.New("embedd/files: no such file")
	// ErrTooLarge is an upload over the store's size limit.
	ErrTooLarge = errors.New("embedd/files: file too large")
)

// File is a stored file's metadata, in the shape of OpenAI's file object.
type File struct {
	// ID is "file-" and 24 random letters and digits.
	ID string `json:"id"`
	// Object is always "file".
	Object string `json:"object"`
	// Bytes is the content's size.
	Bytes int64 `json:"bytes"`
	// CreatedAt is when it was stored, in Unix seconds.
	CreatedAt int64 `json:"created_at"`
	// Filename is the name it was uploaded under.
	Filename string `json:"filename"`
	// Purpose is "batch" for uploads, "batch_output" for what a batch
	// writes.
	Purpose string `json:"purpose"`
	// Status is always "processed" (OpenAI's field, deprecated there).
	Status string `json:"status"`
}

// record is what ID.json holds.
type record struct {
	File
	Owner string `json:"owner"`
}

// Store is a directory of files. Open it with Open; it is safe for
// concurrent use and needs no closing.
type Store struct {
	dir   string
	limit int64

	mu    sync.Mutex
	files map[string]record // by id
}

const (
	metaSuffix = ".json"
	tmpPrefix  = "tmp-"
)

// Open opens (creating it if needed) the store in dir, whose uploads may
// hold at most limit bytes, and clears what an interrupted write left.
func Open(dir string, limit int64) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedd/files: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("embedd/files: %w", err)
	}
	s := &Store{dir: dir, limit: limit, files: map[string]record{}}
	for _, e := range ents {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, metaSuffix); ok && !strings.HasPrefix(name, tmpPrefix) {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return nil, fmt.Errorf("embedd/files: %w", err)
			}
			var r record
			if err := json.Unmarshal(data, &r); err != nil || r.ID != id {
				return nil, fmt.Errorf("embedd/files: %s is damaged: %v", filepath.Join(dir, name), err)
			}
			s.files[id] = r
		}
	}
	for _, e := range ents {
		name := e.Name()
		if _, ok := s.files[strings.TrimSuffix(name, metaSuffix)]; ok {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("embedd/files: clearing an interrupted write: %w", err)
		}
	}
	return s, nil
}

// Limit is the most bytes an upload may hold.
func (s *Store) Limit() int64 { return s.limit }

// NewID returns a new file id: "file-" and 24 random letters and digits.
func NewID() string { return "file-" + randomString(24) }

// randomString is n random letters and digits.
func randomString(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Upload is a file being written; Commit stores it, Abort drops it.
type Upload struct {
	s    *Store
	id   string
	f    *os.File
	n    int64
	done bool
}

// NewUpload starts a file.
func (s *Store) NewUpload() (*Upload, error) {
	id := NewID()
	f, err := os.Create(filepath.Join(s.dir, tmpPrefix+id))
	if err != nil {
		return nil, fmt.Errorf("embedd/files: %w", err)
	}
	return &Upload{s: s, id: id, f: f}, nil
}

// ReadFrom copies r into the upload; ErrTooLarge when the upload would
// pass the store's limit (Abort it then).
func (u *Upload) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(u.f, io.LimitReader(r, u.s.limit-u.n+1))
	u.n += n
	if err != nil {
		return n, fmt.Errorf("embedd/files: writing an upload: %w", err)
	}
	if u.n > u.s.limit {
		return n, fmt.Errorf("%w: over the limit of %d bytes", ErrTooLarge, u.s.limit)
	}
	return n, nil
}

// Size is the bytes written so far.
func (u *Upload) Size() int64 { return u.n }

// Commit makes the upload durable as owner's file.
func (u *Upload) Commit(owner, filename, purpose string) (File, error) {
	u.done = true
	tmp := u.f.Name()
	err := errors.Join(u.f.Sync(), u.f.Close())
	if err == nil {
		err = os.Rename(tmp, filepath.Join(u.s.dir, u.id))
	}
	if err != nil {
		os.Remove(tmp)
		return File{}, fmt.Errorf("embedd/files: storing an upload: %w", err)
	}
	return u.s.commit(record{Owner: owner, File: File{ID: u.id, Bytes: u.n, Filename: filename, Purpose: purpose}})
}

// Abort drops an upload that was not committed; it is a no-op after
// Commit.
func (u *Upload) Abort() {
	if u.done {
		return
	}
	u.done = true
	u.f.Close()
	os.Remove(u.f.Name())
}

// Adopt stores the complete, fsynced file at path (on the store's file
// system) as owner's file id, moving it in: a hard link, the metadata,
// then path removed, so a crash at any point leaves path or the stored
// file. It is idempotent: when id exists already (a retry after a crash),
// it returns that file and removes path if it is still there.
func (s *Store) Adopt(owner, id, filename, purpose, path string) (File, error) {
	s.mu.Lock()
	r, ok := s.files[id]
	s.mu.Unlock()
	if ok {
		os.Remove(path)
		return r.File, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return File{}, fmt.Errorf("embedd/files: %w", err)
	}
	dst := filepath.Join(s.dir, id)
	os.Remove(dst) // a link left by a crash before the metadata
	if err := os.Link(path, dst); err != nil {
		return File{}, fmt.Errorf("embedd/files: %w", err)
	}
	f, err := s.commit(record{Owner: owner, File: File{ID: id, Bytes: st.Size(), Filename: filename, Purpose: purpose}})
	if err != nil {
		return File{}, err
	}
	os.Remove(path)
	return f, nil
}

// commit writes r's metadata durably (its content is in place) and lists
// the file.
func (s *Store) commit(r record) (File, error) {
	r.Object, r.Status, r.CreatedAt = "file", "processed", time.Now().Unix()
	data, err := json.Marshal(r)
	if err != nil {
		return File{}, fmt.Errorf("embedd/files: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(s.dir, r.ID+metaSuffix), data); err != nil {
		os.Remove(filepath.Join(s.dir, r.ID))
		return File{}, err
	}
	s.mu.Lock()
	s.files[r.ID] = r
	s.mu.Unlock()
	return r.File, nil
}

// WriteFileAtomic replaces path with data durably: a temporary file in the
// same directory, fsynced, renamed over path, and the directory fsynced.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("embedd/files: %w", err)
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("embedd/files: writing %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the renames and removals in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("embedd/files: %w", err)
	}
	err = errors.Join(d.Sync(), d.Close())
	if err != nil {
		return fmt.Errorf("embedd/files: fsync %s: %w", dir, err)
	}
	return nil
}

// Get returns owner's file id.
func (s *Store) Get(owner, id string) (File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.lookupLocked(owner, id)
	return r.File, err
}

// lookupLocked is owner's file id; ErrNotFound for another owner's.
func (s *Store) lookupLocked(owner, id string) (record, error) {
	r, ok := s.files[id]
	if !ok || r.Owner != owner {
		return record{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return r, nil
}

// Content opens owner's file id for reading; the caller closes it. A file
// deleted while open stays readable to the end.
func (s *Store) Content(owner, id string) (*os.File, File, error) {
	f, err := s.Get(owner, id)
	if err != nil {
		return nil, File{}, err
	}
	rd, err := os.Open(filepath.Join(s.dir, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, File{}, fmt.Errorf("%w: %s", ErrNotFound, id) // deleted just now
	}
	if err != nil {
		return nil, File{}, fmt.Errorf("embedd/files: %w", err)
	}
	return rd, f, nil
}

// ListOptions selects and pages a List.
type ListOptions struct {
	// Purpose keeps only files of that purpose; "" keeps all.
	Purpose string
	// After starts the page after this id (in the listing's order).
	After string
	// Limit bounds the page; ≤ 0 means no bound.
	Limit int
	// Ascending lists oldest first; default newest first.
	Ascending bool
}

// List returns a page of owner's files, newest first unless o.Ascending
// (ties by id), and whether more follow.
func (s *Store) List(owner string, o ListOptions) (page []File, more bool) {
	s.mu.Lock()
	var all []File
	for _, r := range s.files {
		if r.Owner == owner && (o.Purpose == "" || r.Purpose == o.Purpose) {
			all = append(all, r.File)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b File) int {
		if a.CreatedAt != b.CreatedAt {
			if (a.CreatedAt < b.CreatedAt) == o.Ascending {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	if o.After != "" {
		i := slices.IndexFunc(all, func(f File) bool { return f.ID == o.After })
		if i < 0 {
			return nil, false // an unknown cursor: nothing after it
		}
		all = all[i+1:]
	}
	if o.Limit > 0 && len(all) > o.Limit {
		return all[:o.Limit], true
	}
	return all, false
}

// Delete removes owner's file id: the metadata first (the commit point),
// then the content.
func (s *Store) Delete(owner, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.lookupLocked(owner, id); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.dir, id+metaSuffix)); err != nil {
		return fmt.Errorf("embedd/files: %w", err)
	}
	delete(s.files, id)
	if err := os.Remove(filepath.Join(s.dir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("embedd/files: %w", err)
	}
	return SyncDir(s.dir)
}
