package jobs

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// manifest is a job directory's manifest.json.
type manifest struct {
	Version  int               `json:"version"`
	Kind     string            `json:"kind"`
	Input    identity          `json:"input"`
	Params   map[string]string `json:"params"`
	Shard    string            `json:"shard"`
	PartSize int               `json:"part_size"`
}

// doneFile is done.json: a shard's totals once every part is there.
type doneFile struct {
	Parts  int   `json:"parts"`
	Read   int64 `json:"read"`
	Failed int64 `json:"failed"`
	// RowsA and RowsB are a pairs shard's sets' rows (Parts its blocks).
	RowsA int `json:"rows_a,omitempty"`
	RowsB int `json:"rows_b,omitempty"`
}

const manifestVersion = 1

func (j *Job) manifest() (manifest, error) {
	id, err := identify(j.Input.Path)
	return manifest{Version: manifestVersion, Kind: j.Kind, Input: id, Params: j.Params, Shard: j.Shard.String(), PartSize: j.PartSize}, err
}

// diff says how b differs from a, one clause per difference.
func (a manifest) diff(b manifest) []string {
	var d []string
	cmp := func(what string, x, y any) {
		if x != y {
			d = append(d, fmt.Sprintf("%s was %v, now %v", what, x, y))
		}
	}
	cmp("version", a.Version, b.Version)
	cmp("kind", a.Kind, b.Kind)
	cmp("input path", a.Input.Path, b.Input.Path)
	cmp("input size", a.Input.Size, b.Input.Size)
	cmp("input's first MiB (SHA-256)", a.Input.Head, b.Input.Head)
	cmp("input's last MiB (SHA-256)", a.Input.Tail, b.Input.Tail)
	cmp("shard", a.Shard, b.Shard)
	cmp("part size", a.PartSize, b.PartSize)
	keys := slices.Sorted(maps.Keys(a.Params))
	for k := range b.Params {
		if _, ok := a.Params[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		x, okx := a.Params[k]
		y, oky := b.Params[k]
		if okx != oky || x != y {
			d = append(d, fmt.Sprintf("--%s was %q, now %q", k, x, y))
		}
	}
	return d
}

// staleTemp is how long a temporary file in a job directory goes
// unmodified before a job starting there removes it. A process killed
// while writing a part or a checkpoint leaves its temporary file behind
// (a checkpoint's is about 70 MB at 1M rows); a live writer finishes its
// file within seconds, and another process may be running the same shard,
// so only old ones go (an hour allows for clocks that differ between the
// machines sharing a volume).
const staleTemp = time.Hour

// removeStaleTemps removes the stale temporary files of createAtomic in
// dirs.
func removeStaleTemps(dirs ...string) {
	for _, d := range dirs {
		names, _ := filepath.Glob(filepath.Join(d, ".*.tmp*"))
		for _, n := range names {
			if st, err := os.Stat(n); err == nil && time.Since(st.ModTime()) > staleTemp {
				os.Remove(n)
			}
		}
	}
}

// prepareDir creates dir with the job's manifest, or checks that the one
// there is the same job's, and removes what killed runs left half-written.
func prepareDir(dir string, m manifest) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("embedd/jobs: job directory: %w", err)
	}
	removeStaleTemps(dir, filepath.Join(dir, "pairs"))
	path := filepath.Join(dir, "manifest.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return writeJSONAtomic(path, m)
	}
	if err != nil {
		return fmt.Errorf("embedd/jobs: job directory: %w", err)
	}
	var old manifest
	if err := json.Unmarshal(b, &old); err != nil {
		return fmt.Errorf("embedd/jobs: %s: %w", path, err)
	}
	if d := old.diff(m); len(d) > 0 {
		return fmt.Errorf("%w %s: %s; use another --job-dir, or remove this one to start over", ErrMismatch, dir, strings.Join(d, "; "))
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("embedd/jobs: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("embedd/jobs: %s: %w", path, err)
	}
	return nil
}

func writeJSONAtomic(path string, v any) error {
	f, err := createAtomic(path, nil)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(v, "", "  ") // plain structs always marshal
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.abort()
		return fmt.Errorf("embedd/jobs: %w", err)
	}
	return f.commit()
}

// partName is part p's file name, with its record count.
func partName(p, n int) string { return fmt.Sprintf("part-%06d-n%d.bin", p, n) }

// listParts returns the complete parts in dir: part number → record count.
func listParts(dir string) (map[int]int, error) {
	names, err := filepath.Glob(filepath.Join(dir, "part-*-n*.bin"))
	if err != nil {
		return nil, fmt.Errorf("embedd/jobs: %w", err)
	}
	parts := map[int]int{}
	for _, name := range names {
		var p, n int
		if _, err := fmt.Sscanf(filepath.Base(name), "part-%06d-n%d.bin", &p, &n); err == nil {
			parts[p] = n
		}
	}
	return parts, nil
}

// The part file: "EJP1", then per result: line, ID, Err, Model, Tokens,
// the vectors (count; per vector its width and little-endian float32s)
// and the neighbours (count; per neighbour ID and float32 score); integers
// as uvarints, strings as a uvarint length and bytes.
// partMagic starts a part file; partMagicV1's parts (before Base64) are
// still read.
const (
	partMagic   = "EJP2"
	partMagicV1 = "EJP1"
)

type partWriter struct {
	w   *bufio.Writer
	tmp []byte
}

func (p *partWriter) uvarint(x uint64) { p.tmp = binary.AppendUvarint(p.tmp, x) }
func (p *partWriter) str(s string) {
	p.uvarint(uint64(len(s)))
	p.tmp = append(p.tmp, s...)
}
func (p *partWriter) f32(x float32) {
	p.tmp = binary.LittleEndian.AppendUint32(p.tmp, math.Float32bits(x))
}

func (p *partWriter) write(r *Result) error {
	p.tmp = p.tmp[:0]
	p.uvarint(uint64(r.Line))
	p.str(r.ID)
	p.str(r.Err)
	p.str(r.Model)
	p.uvarint(uint64(r.Tokens))
	flags := uint64(0)
	if r.Base64 {
		flags |= 1
	}
	p.uvarint(flags)
	p.uvarint(uint64(len(r.Vectors)))
	for _, v := range r.Vectors {
		p.uvarint(uint64(len(v)))
		for _, x := range v {
			p.f32(x)
		}
	}
	p.uvarint(uint64(len(r.Neighbors)))
	for _, n := range r.Neighbors {
		p.str(n.ID)
		p.f32(n.Score)
	}
	_, err := p.w.Write(p.tmp)
	return err
}

// writePart writes part p of dir under a temporary name and renames it
// into place.
func writePart(dir string, p int, res []Result) error {
	f, err := createAtomic(filepath.Join(dir, partName(p, len(res))), nil)
	if err != nil {
		return err
	}
	pw := &partWriter{w: bufio.NewWriterSize(f, 256<<10)}
	pw.w.WriteString(partMagic)
	for i := range res {
		if err := pw.write(&res[i]); err != nil {
			f.abort()
			return fmt.Errorf("embedd/jobs: writing part %d: %w", p, err)
		}
	}
	if err := pw.w.Flush(); err != nil {
		f.abort()
		return fmt.Errorf("embedd/jobs: writing part %d: %w", p, err)
	}
	return f.commit()
}

// readPart calls fn with each of part file path's n results, in order;
// the Result is reused between calls.
func readPart(path string, n int, fn func(*Result) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("embedd/jobs: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	bad := func(err error) error { return fmt.Errorf("embedd/jobs: part %s is damaged: %w", path, err) }
	magic := make([]byte, len(partMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != partMagic && string(magic) != partMagicV1 {
		return bad(errors.New("no part header"))
	}
	v1 := string(magic) == partMagicV1
	uv := func() uint64 {
		x, e := binary.ReadUvarint(r)
		if err == nil {
			err = e
		}
		return x
	}
	buf := make([]byte, 4096)
	str := func() string {
		l := uv()
		if err != nil || l > 1<<30 {
			err = cmpErr(err, "string length")
			return ""
		}
		buf = slices.Grow(buf[:0], int(l))[:l]
		_, e := io.ReadFull(r, buf)
		if err == nil {
			err = e
		}
		return string(buf)
	}
	f32 := func() float32 {
		var b [4]byte
		_, e := io.ReadFull(r, b[:])
		if err == nil {
			err = e
		}
		return math.Float32frombits(binary.LittleEndian.Uint32(b[:]))
	}
	var res Result
	for range n {
		res = Result{Line: int64(uv()), ID: str(), Err: str(), Model: str(), Tokens: int(uv())}
		if !v1 {
			res.Base64 = uv()&1 != 0
		}
		nv := uv()
		for range min(nv, 1<<20) {
			v := make([]float32, min(uv(), 1<<24))
			for k := range v {
				v[k] = f32()
			}
			res.Vectors = append(res.Vectors, v)
		}
		nn := uv()
		for range min(nn, 1<<20) {
			res.Neighbors = append(res.Neighbors, Neighbor{ID: str(), Score: f32()})
		}
		if err != nil {
			return bad(err)
		}
		if err := fn(&res); err != nil {
			return err
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return bad(errors.New("data after the last record"))
	}
	return nil
}

func cmpErr(err error, what string) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("%s out of range", what)
}
