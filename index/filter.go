package index

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// fieldIndex is what filters read instead of every row's JSON: for each
// top-level metadata field a filter has named, the rows of the generation
// holding each value, built on first use and extended as rows are appended.
// A generation's rows never change, so an index entry never goes stale;
// compaction starts a new generation, and with it an empty index.
//
// Memory: per field ever filtered on, 4 bytes per row that has the field
// plus each distinct value once.
type fieldIndex struct {
	mu     sync.Mutex             // guards fields (the map, not what it points to)
	fields map[string]*fieldPosts // field name → its postings
}

// fieldPosts indexes one field over the rows [0, rows) of a generation.
type fieldPosts struct {
	// mu guards rows and values and is held while rows are added, so
	// searches that need more rows than are indexed wait for the one that
	// indexes them. A posting list is only appended to: the header a
	// search takes under mu keeps describing the same rows after mu is
	// released.
	mu     sync.Mutex
	rows   int
	values map[string][]uint32 // value (see fieldValue) → rows, ascending
}

// field returns the postings of name, made empty on first use.
func (fi *fieldIndex) field(name string) *fieldPosts {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	if fi.fields == nil {
		fi.fields = make(map[string]*fieldPosts)
	}
	f := fi.fields[name]
	if f == nil {
		f = &fieldPosts{values: make(map[string][]uint32)}
		fi.fields[name] = f
	}
	return f
}

// postings returns the rows below s.Len() whose field name has value want,
// ascending, indexing the rows s has that the index has not seen yet.
func (fi *fieldIndex) postings(ctx context.Context, s *Snapshot, name, want string) ([]uint32, error) {
	f := fi.field(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	for ; f.rows < s.Len(); f.rows++ {
		r := f.rows
		if r%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("embedd/index: search: %w", err)
			}
		}
		meta, isJSON := s.Metadata(r)
		if !isJSON {
			continue
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(meta, &obj) != nil {
			continue
		}
		if v, ok := fieldValue(obj[name]); ok {
			f.values[v] = append(f.values[v], uint32(r))
		}
	}
	p := f.values[want]
	return p[:sort.Search(len(p), func(i int) bool { return int(p[i]) >= s.Len() })], nil
}

// fieldValue is the string a filter value is compared with: a JSON string's
// contents, or the compacted JSON text of anything else (so 5, true and
// null match "5", "true" and "null"). A missing field has none.
func fieldValue(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	if raw[0] != '"' {
		return string(raw), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// filterSkip returns the bitmap of s's rows a search must skip under
// filter: the deleted rows and every row whose JSON metadata does not have,
// for each key, a top-level field of that value (see Search). Rows without
// JSON metadata never match a non-empty filter.
func filterSkip(ctx context.Context, s *Snapshot, filter map[string]string) ([]uint64, error) {
	lists := make([][]uint32, 0, len(filter))
	for name, want := range filter {
		p, err := s.st.gen.fields.postings(ctx, s, name, want)
		if err != nil {
			return nil, err
		}
		lists = append(lists, p)
	}
	n := s.Len()
	skip := make([]uint64, (n+63)/64)
	for i := range skip {
		skip[i] = ^uint64(0)
	}
	// Walk the shortest list; the others advance past each of its rows.
	slices.SortFunc(lists, func(a, b []uint32) int { return len(a) - len(b) })
	deleted := s.DeletedBitmap()
	pos := make([]int, len(lists))
rows:
	for _, r := range lists[0] {
		for i := 1; i < len(lists); i++ {
			l := lists[i]
			for pos[i] < len(l) && l[pos[i]] < r {
				pos[i]++
			}
			if pos[i] == len(l) {
				break rows
			}
			if l[pos[i]] != r {
				continue rows
			}
		}
		if deleted[r/64]&(1<<(r%64)) == 0 {
			skip[r/64] &^= 1 << (r % 64)
		}
	}
	return skip, nil
}
