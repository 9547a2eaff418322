package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// littleEndian is true on the hosts this package runs on: rows are mapped
// straight into []float32, so the on-disk byte order must be the host's.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

const (
	growAlign   = 64 << 10 // file capacities are multiples of this
	maxGrowStep = 1 << 30  // files double until they grow by this much at a time
	minCapacity = 64 << 10
)

// errNoRoom is returned by ensure on a private (read-only) mapping asked for
// more than the file holds; a read-only replay stops there.
var errNoRoom = errors.New("embedd/index: read-only mapping has no room")

// mappedFile is one data file mapped into memory.
//
// A writable file is mapped MAP_SHARED with a reservation larger than the
// file and grown underneath it with fallocate, so slices handed out earlier
// stay valid; when the file outgrows the reservation it is mapped again,
// larger, and the old mapping is kept (old) until close, because snapshots
// may still hold slices of it. A read-only opener maps the file MAP_PRIVATE
// at its current size: it can replay the WAL into its own copy-on-write pages
// without touching the file.
//
// Its fields are guarded by the owner's writer lock (Collection.mu), except
// f, which sync uses concurrently.
type mappedFile struct {
	f          *os.File
	path       string
	private    bool
	size       int64    // file size: the capacity, not the logical length
	mem        []byte   // current mapping; len(mem) >= size
	old        [][]byte // earlier mappings, unmapped at close
	minReserve int64
}

// createMappedFile creates path (replacing any file there) with header at
// offset 0 and at least capacity bytes, and maps it writable. The caller
// closes the result.
func createMappedFile(path string, header []byte, capacity, minReserve int64) (_ *mappedFile, err error) {
	// A new inode, never a truncated old one: a reader may still map a
	// file of that name left by an earlier attempt.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	m := &mappedFile{f: f, path: path, minReserve: minReserve}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	if _, err := f.WriteAt(header, 0); err != nil {
		return nil, fmt.Errorf("embedd/index: writing %s: %w", path, err)
	}
	if err := m.allocate(roundCapacity(max(capacity, int64(len(header))))); err != nil {
		return nil, err
	}
	if err := m.remap(); err != nil {
		return nil, err
	}
	return m, nil
}

// openMappedFile maps an existing file: shared and writable, or private (for
// a read-only opener, which never writes the file). The caller closes the
// result.
func openMappedFile(path string, private bool, minReserve int64) (_ *mappedFile, err error) {
	flag := os.O_RDWR
	if private {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	m := &mappedFile{f: f, path: path, private: private, minReserve: minReserve}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("embedd/index: %w", err)
	}
	m.size = st.Size()
	if m.size < fileHeaderSize {
		return nil, corruptf("%s is %d bytes, shorter than its header", path, m.size)
	}
	if err := m.remap(); err != nil {
		return nil, err
	}
	return m, nil
}

func roundCapacity(n int64) int64 {
	n = max(n, minCapacity)
	return (n + growAlign - 1) / growAlign * growAlign
}

// nextCapacity is the capacity to grow to for need bytes: doubling, by at
// most maxGrowStep at a time.
func nextCapacity(cur, need int64) int64 {
	c := max(cur, minCapacity)
	for c < need {
		c += min(c, maxGrowStep)
	}
	return roundCapacity(c)
}

// allocate sets the file's size to n, reserving its blocks where the file
// system can (so a later write through the mapping cannot fault for lack of
// space).
func (m *mappedFile) allocate(n int64) error {
	err := unix.Fallocate(int(m.f.Fd()), 0, 0, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = m.f.Truncate(n)
	}
	if err != nil {
		return fmt.Errorf("embedd/index: growing %s to %d bytes: %w", m.path, n, err)
	}
	m.size = n
	return nil
}

// remap maps the file again when it outgrew the current mapping (or was
// never mapped), keeping the old mapping for the snapshots that hold it.
func (m *mappedFile) remap() error {
	if int64(len(m.mem)) >= m.size && m.mem != nil {
		return nil
	}
	length := m.size
	prot := unix.PROT_READ | unix.PROT_WRITE
	flags := unix.MAP_SHARED | unix.MAP_NORESERVE
	if m.private {
		flags = unix.MAP_PRIVATE | unix.MAP_NORESERVE
	} else {
		length = max(m.minReserve, 2*m.size)
		length = (length + growAlign - 1) / growAlign * growAlign
	}
	mem, err := unix.Mmap(int(m.f.Fd()), 0, int(length), prot, flags)
	if err != nil {
		return fmt.Errorf("embedd/index: mapping %s (%d bytes): %w", m.path, length, err)
	}
	if m.mem != nil {
		m.old = append(m.old, m.mem)
	}
	m.mem = mem
	return nil
}

// ensure makes the file hold at least need bytes.
func (m *mappedFile) ensure(need int64) error {
	if need <= m.size {
		return nil
	}
	if m.private {
		return errNoRoom
	}
	err := m.allocate(nextCapacity(m.size, need))
	if errors.Is(err, unix.ENOSPC) && roundCapacity(need) < nextCapacity(m.size, need) {
		err = m.allocate(roundCapacity(need)) // a nearly full disk may still hold this
	}
	if err != nil {
		return err
	}
	return m.remap()
}

// bytes returns the mapped file, len = its size. Valid until close.
func (m *mappedFile) bytes() []byte { return m.mem[:m.size:m.size] }

// sync flushes the file's data (including what was written through the
// mapping: on Linux the page cache is one) to stable storage.
func (m *mappedFile) sync() error {
	if m.private {
		return nil
	}
	if err := unix.Fdatasync(int(m.f.Fd())); err != nil {
		return fmt.Errorf("embedd/index: syncing %s: %w", m.path, err)
	}
	return nil
}

// close unmaps every mapping and closes the file. It is nil-safe and
// idempotent.
func (m *mappedFile) close() error {
	if m == nil {
		return nil
	}
	var errs []error
	for _, mem := range append(m.old, m.mem) {
		if mem != nil {
			if err := unix.Munmap(mem); err != nil {
				errs = append(errs, fmt.Errorf("embedd/index: unmapping %s: %w", m.path, err))
			}
		}
	}
	m.mem, m.old = nil, nil
	if m.f != nil {
		if err := m.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("embedd/index: %w", err))
		}
		m.f = nil
	}
	return errors.Join(errs...)
}

// makeHeader returns the 64-byte header of a data file.
func makeHeader(magic string, dim int, gen uint64) []byte {
	h := make([]byte, fileHeaderSize)
	copy(h, magic)
	binary.LittleEndian.PutUint32(h[8:], formatVersion)
	binary.LittleEndian.PutUint32(h[12:], uint32(dim))
	binary.LittleEndian.PutUint64(h[16:], gen)
	binary.LittleEndian.PutUint32(h[60:], crc32.Checksum(h[:60], castagnoli))
	return h
}

// openLog maps an append-only file of generation gen (the id table or the
// metadata) and checks its header and that its checkpointed length fits.
// The caller closes the result.
func openLog(path, magic string, gen uint64, length int64, private bool) (*mappedFile, error) {
	f, err := openMappedFile(path, private, smallReserve)
	if err != nil {
		return nil, err
	}
	if err := checkHeader(f.bytes(), magic, 0, gen, f.path); err != nil {
		f.close()
		return nil, err
	}
	if length < fileHeaderSize || length > f.size {
		f.close()
		return nil, corruptf("%s: checkpointed length %d is outside the file's %d bytes", f.path, length, f.size)
	}
	return f, nil
}

// checkHeader verifies a data file's header against what the manifest and
// checkpoint say it must be.
func checkHeader(h []byte, magic string, dim int, gen uint64, path string) error {
	if len(h) < fileHeaderSize {
		return corruptf("%s: header is short", path)
	}
	if crc32.Checksum(h[:60], castagnoli) != binary.LittleEndian.Uint32(h[60:]) {
		return corruptf("%s: header checksum mismatch", path)
	}
	if string(h[:8]) != magic {
		return corruptf("%s: magic %q, want %q", path, h[:8], magic)
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != formatVersion {
		return corruptf("%s: format version %d, want %d", path, v, formatVersion)
	}
	if d := binary.LittleEndian.Uint32(h[12:]); int(d) != dim {
		return corruptf("%s: dim %d, want %d", path, d, dim)
	}
	if g := binary.LittleEndian.Uint64(h[16:]); g != gen {
		return corruptf("%s: generation %d, want %d", path, g, gen)
	}
	return nil
}

// syncDir fsyncs a directory so that creates, renames and removes in it are
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("embedd/index: syncing directory %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data: a temporary file, fsync,
// rename, fsync of the directory. A crash leaves the old or the new file.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("embedd/index: writing %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("embedd/index: syncing %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	return syncDir(dir)
}
