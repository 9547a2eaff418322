package index

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Prefixes of directories a crash can leave behind in a data directory; no
// collection name can start with a dot.
const (
	creatingPrefix = ".creating-"
	droppedPrefix  = ".dropped-"
)

// Manager holds the collections of one data directory, each in a
// subdirectory named after it. It is safe for concurrent use.
type Manager struct {
	dir  string
	opts []Option

	mu     sync.Mutex // guards cols and closed; held across Create and Drop
	cols   map[string]*Collection
	closed bool
}

// CollectionDir is the directory of collection name under the data
// directory dataDir, for OpenReadOnly from another process.
func CollectionDir(dataDir, name string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	return filepath.Join(dataDir, name), nil
}

// OpenManager opens the data directory dir (creating it if missing) and
// every collection in it, with opts. What a crash left of a create or a drop
// is removed. The caller must Close the manager, which closes the
// collections.
func OpenManager(dir string, opts ...Option) (*Manager, error) {
	return openManager(dir, opts)
}

func openManager(dir string, opts []Option) (_ *Manager, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	m := &Manager{dir: dir, opts: opts, cols: make(map[string]*Collection)}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	log := buildOptions(opts).logger
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() {
			continue
		}
		if strings.HasPrefix(name, creatingPrefix) || strings.HasPrefix(name, droppedPrefix) {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("embedd/index: %w", err)
			}
			continue
		}
		if ValidName(name) != nil {
			log.Warn("embedd/index: skipping a directory that cannot be a collection", "dir", filepath.Join(dir, name))
			continue
		}
		c, err := Open(filepath.Join(dir, name), opts...)
		if errors.Is(err, ErrNotFound) {
			log.Warn("embedd/index: skipping a directory without a manifest", "dir", filepath.Join(dir, name))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("embedd/index: opening collection %q: %w", name, err)
		}
		m.cols[name] = c
	}
	return m, nil
}

// Create makes collection name with spec (fixed from then on) and returns
// it open; the manager owns it (Drop or Close closes it). It is ErrExists if
// the name is taken and ErrInvalid if the name or spec is.
func (m *Manager) Create(name string, spec Spec) (*Collection, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	man, err := newManifest(spec)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("%w: manager of %s", ErrClosed, m.dir)
	}
	final := filepath.Join(m.dir, name)
	if _, ok := m.cols[name]; ok {
		return nil, fmt.Errorf("%w: collection %q", ErrExists, name)
	}
	if _, err := os.Stat(final); err == nil {
		return nil, fmt.Errorf("%w: %s exists (not a collection this manager opened)", ErrExists, final)
	}
	// Build it aside and rename it into place, so a crash leaves either
	// nothing or a whole collection.
	tmp := filepath.Join(m.dir, creatingPrefix+name)
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	if err := initDir(tmp, man); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	if err := syncDir(m.dir); err != nil {
		return nil, err
	}
	c, err := Open(final, m.opts...)
	if err != nil {
		return nil, err
	}
	m.cols[name] = c
	return c, nil
}

// Get returns the open collection name, owned by the manager (do not Close
// it). An unknown name is ErrNotFound.
func (m *Manager) Get(name string) (*Collection, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("%w: manager of %s", ErrClosed, m.dir)
	}
	c, ok := m.cols[name]
	if !ok {
		return nil, fmt.Errorf("%w: collection %q", ErrNotFound, name)
	}
	return c, nil
}

// Drop closes collection name and removes its files. Calls on it afterwards
// fail with ErrClosed; open snapshots stay readable until closed. An unknown
// name is ErrNotFound.
func (m *Manager) Drop(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("%w: manager of %s", ErrClosed, m.dir)
	}
	c, ok := m.cols[name]
	if !ok {
		return fmt.Errorf("%w: collection %q", ErrNotFound, name)
	}
	delete(m.cols, name)
	cerr := c.Close()
	// Rename first: a crash then leaves a .dropped- directory that the next
	// OpenManager removes, never half a collection under its name.
	gone := filepath.Join(m.dir, droppedPrefix+name)
	if err := os.RemoveAll(gone); err != nil {
		return errors.Join(cerr, fmt.Errorf("embedd/index: %w", err))
	}
	if err := os.Rename(filepath.Join(m.dir, name), gone); err != nil {
		return errors.Join(cerr, fmt.Errorf("embedd/index: %w", err))
	}
	if err := syncDir(m.dir); err != nil {
		return errors.Join(cerr, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return errors.Join(cerr, fmt.Errorf("embedd/index: %w", err))
	}
	return nil
}

// List returns the collections' names, sorted.
func (m *Manager) List() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.cols))
	for name := range m.cols {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Close closes every collection (in name order, joining errors). It is
// nil-safe and idempotent.
func (m *Manager) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	names := make([]string, 0, len(m.cols))
	for name := range m.cols {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		if err := m.cols[name].Close(); err != nil {
			errs = append(errs, fmt.Errorf("embedd/index: closing collection %q: %w", name, err))
		}
	}
	m.cols = nil
	return errors.Join(errs...)
}
