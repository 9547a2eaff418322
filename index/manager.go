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
// subdirectory named after it. It is safe for concurrent use. Creating or
// dropping one collection (file system work, a final checkpoint, removing
// its files) does not hold up calls on the others.
type Manager struct {
	dir  string
	opts []Option

	// mu guards cols, busy and closed, and is held only to read or change
	// them: never across file system work or a call into a Collection, so
	// it comes after every lock a Collection takes (no Collection method
	// waits for it).
	mu     sync.Mutex
	cols   map[string]*Collection
	busy   map[string]bool // names being created or dropped, not in cols
	closed bool
	ops    sync.WaitGroup // Creates and Drops under way; Close waits for them
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
// the name is taken (or being created or dropped) and ErrInvalid if the
// name or spec is.
func (m *Manager) Create(name string, spec Spec) (_ *Collection, err error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	man, err := newManifest(spec)
	if err != nil {
		return nil, err
	}
	if _, err := m.claim(name, false); err != nil {
		return nil, err
	}
	var c *Collection
	defer func() { err = m.settle(name, c, err) }()
	final := filepath.Join(m.dir, name)
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
	if c, err = Open(final, m.opts...); err != nil {
		return nil, err
	}
	return c, nil
}

// claim marks name busy for a Create (the name must be free) or a Drop (the
// collection must be open: it leaves cols, so Get no longer finds it, and
// claim returns it).
func (m *Manager) claim(name string, drop bool) (*Collection, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("%w: manager of %s", ErrClosed, m.dir)
	}
	c, open := m.cols[name]
	switch {
	case m.busy[name] && !drop:
		return nil, fmt.Errorf("%w: collection %q is being created or dropped", ErrExists, name)
	case open && !drop:
		return nil, fmt.Errorf("%w: collection %q", ErrExists, name)
	case !open && drop:
		return nil, fmt.Errorf("%w: collection %q", ErrNotFound, name)
	}
	if m.busy == nil {
		m.busy = make(map[string]bool)
	}
	delete(m.cols, name)
	m.busy[name] = true
	m.ops.Add(1)
	return c, nil
}

// settle ends the Create or Drop of name that claim began: a created
// collection c (nil for a Drop or a failed Create) joins cols, unless the
// manager was closed meanwhile: then c is closed and the result is
// ErrClosed. It returns err otherwise.
func (m *Manager) settle(name string, c *Collection, err error) error {
	defer m.ops.Done()
	m.mu.Lock()
	delete(m.busy, name)
	closed := m.closed
	if c != nil && !closed {
		m.cols[name] = c
	}
	m.mu.Unlock()
	if c != nil && closed {
		return errors.Join(fmt.Errorf("%w: manager of %s closed during the create", ErrClosed, m.dir), c.Close())
	}
	return err
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

// Drop closes collection name and removes its files. Get stops finding it
// at once; calls on it afterwards fail with ErrClosed; open snapshots stay
// readable until closed. An unknown name is ErrNotFound, and so is a name
// already being dropped.
func (m *Manager) Drop(name string) (err error) {
	c, err := m.claim(name, true)
	if err != nil {
		return err
	}
	defer func() { err = m.settle(name, nil, err) }()
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
	return nil // the files are gone: how the close went no longer matters
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

// Close waits for the Creates and Drops under way, then closes every
// collection (in name order, joining errors). Calls that start after it
// began fail with ErrClosed. It is nil-safe and idempotent.
func (m *Manager) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	cols := m.cols
	m.cols = nil
	m.mu.Unlock()
	m.ops.Wait()
	names := make([]string, 0, len(cols))
	for name := range cols {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		if err := cols[name].Close(); err != nil {
			errs = append(errs, fmt.Errorf("embedd/index: closing collection %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
