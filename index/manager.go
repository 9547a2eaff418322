package index

import (
	"errors"
	"fmt"
	"maps"
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
	mu          sync.Mutex
	cols        map[string]*Collection
	unavailable map[string]error // collections that failed to open → why; not in cols
	busy        map[string]bool  // names being created, dropped or repaired; in neither map
	closed      bool
	ops         sync.WaitGroup // Creates and Drops under way; Close waits for them
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
// is removed. A collection that fails to open (damaged files, another
// writer) does not stop the others: it is logged and kept aside as
// unavailable (see Unavailable), and Get on it returns ErrUnavailable with
// the reason. The caller must Close the manager, which closes the
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
	m := &Manager{dir: dir, opts: opts, cols: make(map[string]*Collection), unavailable: make(map[string]error), busy: make(map[string]bool)}
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
		if strings.HasPrefix(name, ".") {
			continue // no collection name starts with a dot: others' state (the Files API's)
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
			log.Error("embedd/index: collection unavailable", "collection", name, "err", err)
			m.unavailable[name] = err
			continue
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
	if _, _, err := m.claim(name, claimCreate); err != nil {
		return nil, err
	}
	var c *Collection
	defer func() { err = m.settle(name, c, nil, noSpace(m.dir, err)) }()
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

// claimOp is what claim reserves a name for.
type claimOp int

const (
	claimCreate claimOp = iota // the name must be free
	claimDrop                  // the collection must be open or unavailable
	claimRepair                // the collection must be unavailable
)

// claim marks name busy for op, taking the collection out of cols and
// unavailable (so Get no longer finds it), and returns it when it was open,
// or why it was unavailable.
func (m *Manager) claim(name string, op claimOp) (_ *Collection, reason, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, fmt.Errorf("%w: manager of %s", ErrClosed, m.dir)
	}
	c, open := m.cols[name]
	reason, broken := m.unavailable[name]
	switch {
	case op == claimCreate && m.busy[name]:
		return nil, nil, fmt.Errorf("%w: collection %q is being created, dropped or repaired", ErrExists, name)
	case op == claimCreate && (open || broken):
		return nil, nil, fmt.Errorf("%w: collection %q", ErrExists, name)
	case op == claimDrop && !open && !broken:
		return nil, nil, fmt.Errorf("%w: collection %q", ErrNotFound, name)
	case op == claimRepair && open:
		return nil, nil, fmt.Errorf("%w: collection %q is open: nothing to repair", ErrInvalid, name)
	case op == claimRepair && !broken:
		return nil, nil, fmt.Errorf("%w: collection %q", ErrNotFound, name)
	}
	delete(m.cols, name)
	delete(m.unavailable, name)
	m.busy[name] = true
	m.ops.Add(1)
	return c, reason, nil
}

// settle ends the operation on name that claim began: an opened collection
// c joins cols, or a collection that still fails (broken) goes back to
// unavailable, unless the manager was closed meanwhile: then c is closed and
// the result is ErrClosed. It returns err otherwise.
func (m *Manager) settle(name string, c *Collection, broken, err error) error {
	defer m.ops.Done()
	m.mu.Lock()
	delete(m.busy, name)
	closed := m.closed
	if !closed && c != nil {
		m.cols[name] = c
	}
	if !closed && broken != nil {
		m.unavailable[name] = broken
	}
	m.mu.Unlock()
	if c != nil && closed {
		return errors.Join(fmt.Errorf("%w: manager of %s closed meanwhile", ErrClosed, m.dir), c.Close())
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
	if reason, broken := m.unavailable[name]; broken {
		return nil, fmt.Errorf("%w: collection %q: %w", ErrUnavailable, name, reason)
	}
	if !ok {
		return nil, fmt.Errorf("%w: collection %q", ErrNotFound, name)
	}
	return c, nil
}

// Unavailable returns the collections that exist in the data directory but
// failed to open, each with the reason (an error that wraps ErrCorrupt,
// ErrLocked, …). List does not name them; Drop removes one, Repair salvages
// one whose write-ahead log is damaged.
func (m *Manager) Unavailable() map[string]error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.unavailable)
}

// Repair runs the package's Repair on collection name, which must be
// unavailable (ErrNotFound otherwise; ErrInvalid if it is open), and opens
// it on success, so that Get finds it again without a restart. If it still
// cannot be opened it stays unavailable with the new reason.
func (m *Manager) Repair(name string) (rep RepairReport, err error) {
	if _, _, err := m.claim(name, claimRepair); err != nil {
		return rep, err
	}
	var c *Collection
	var broken error
	defer func() { err = m.settle(name, c, broken, err) }()
	dir := filepath.Join(m.dir, name)
	if rep, err = Repair(dir, m.opts...); err == nil {
		c, err = Open(dir, m.opts...)
	}
	broken = err
	return rep, err
}

// Drop closes collection name (open, or unavailable unless another process
// holds its writer's lock: ErrLocked) and removes its files.
// Get stops finding it at once; calls on it afterwards fail with ErrClosed; open snapshots stay
// readable until closed. An unknown name is ErrNotFound, and so is a name
// already being dropped.
func (m *Manager) Drop(name string) (err error) {
	c, reason, err := m.claim(name, claimDrop)
	if err != nil {
		return err
	}
	var keep error // set: the collection stays unavailable, with this reason
	defer func() { err = m.settle(name, nil, keep, err) }()
	if c == nil {
		// Unavailable: it may be unavailable because another process
		// writes it. Only remove what no writer holds.
		lock, err := lockDir(filepath.Join(m.dir, name))
		if err != nil {
			keep = reason
			return err
		}
		defer lock.Close()
	}
	cerr := c.Close() // nil for an unavailable collection
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

// Rescan opens the collections that appeared in the data directory since
// the manager opened it (written by another process, such as embedd import,
// which then released them) and returns their names, sorted. A directory
// another writer still holds (ErrLocked), or one without a manifest yet, is
// left for a later Rescan; one that fails to open otherwise becomes
// unavailable with the reason.
func (m *Manager) Rescan() ([]string, error) {
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	var opened []string
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || ValidName(name) != nil {
			continue
		}
		if !m.unknown(name) {
			continue
		}
		if _, _, err := m.claim(name, claimCreate); err != nil {
			continue // claimed meanwhile: a Create, or the manager closed
		}
		c, err := Open(filepath.Join(m.dir, name), m.opts...)
		var broken error
		switch {
		case errors.Is(err, ErrLocked), errors.Is(err, ErrNotFound):
			err = nil // not ready yet
		case err != nil:
			broken, err = err, nil
		}
		if err := m.settle(name, c, broken, err); err != nil {
			return opened, err
		}
		if c != nil {
			opened = append(opened, name)
		}
	}
	return opened, nil
}

// unknown reports whether name is neither open, unavailable nor busy.
func (m *Manager) unknown(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, open := m.cols[name]
	_, broken := m.unavailable[name]
	return !open && !broken && !m.busy[name]
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
