package tokenizer

import (
	"encoding/binary"
	"math/bits"
	"sort"
)

// This file is the WordPiece model. A word is first looked up whole in a
// hash table of the vocabulary. If it is not an entry, it is split greedily
// into the longest vocabulary prefix, then the longest continuing piece
// ("##" + piece), and so on; if some position has no piece, the whole word
// becomes [UNK]. Longest matches are found by walking a byte trie, so a word
// of n bytes costs at most n trie steps per piece.

// vocabTable is an open-addressing hash table (linear probing) from
// vocabulary entries to ids. Entries of up to 8 bytes are stored in the slot
// itself, so most lookups touch one cache line and compare one integer;
// slots are 16 bytes, four to a cache line.
type vocabTable struct {
	slots []vocabSlot // len is a power of two, at most half full
	shift uint        // 64 - log2(len(slots))
	blob  []byte      // the bytes of the entries longer than 8 bytes
	long  map[string]int32
}

// vocabSlot is one slot of a vocabTable.
type vocabSlot struct {
	key uint64 // the entry's bytes, little-endian, if its length is <= 8; else its hash
	id  int32
	// meta is the entry's length in bytes (0 for an empty slot) in the low
	// 8 bits and, if it is longer than 8, its offset in blob above them.
	meta uint32
}

// maxBlob bounds the bytes of long entries kept in blob (offsets have 24
// bits); entries beyond it, or longer than 255 bytes, go to long.
const maxBlob = 1 << 24

// newVocabTable builds the table of entries (all non-empty).
func newVocabTable(entries map[string]int32) *vocabTable {
	size := 1 << bits.Len(uint(2*len(entries)))
	v := &vocabTable{
		slots: make([]vocabSlot, size),
		shift: uint(64 - bits.TrailingZeros(uint(size))),
		long:  make(map[string]int32),
	}
	for w, id := range entries {
		if len(w) > 255 || len(w) > 8 && len(v.blob)+len(w) > maxBlob {
			v.long[w] = id // never in real vocabularies
			continue
		}
		b := []byte(w)
		key, h := wordKey(b)
		i := h >> v.shift
		for v.slots[i].meta != 0 {
			i = (i + 1) & uint64(size-1)
		}
		v.slots[i] = vocabSlot{key: key, id: id, meta: uint32(len(b))}
		if len(b) > 8 {
			v.slots[i].meta |= uint32(len(v.blob)) << 8
			v.blob = append(v.blob, b...)
		}
	}
	return v
}

// wordKey returns the slot key and the hash of w. Both are cheap when w has
// a capacity of at least 8 bytes.
func wordKey(w []byte) (key, hash uint64) {
	const m1, m2 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F
	n := len(w)
	if n <= 8 {
		if cap(w) >= 8 {
			key = binary.LittleEndian.Uint64(w[:8]) & (^uint64(0) >> (64 - 8*n))
		} else {
			for i := n - 1; i >= 0; i-- {
				key = key<<8 | uint64(w[i])
			}
		}
		hash = (key ^ uint64(n)<<59) * m1
		return key, hash ^ hash>>31*m2
	}
	hash = uint64(n) * m2
	for i := 0; i < n-8; i += 8 {
		hash = bits.RotateLeft64((hash^binary.LittleEndian.Uint64(w[i:]))*m1, 31)
	}
	hash = (hash ^ binary.LittleEndian.Uint64(w[n-8:])) * m2 // the last 8 bytes, overlapping the chunks
	hash ^= hash >> 29
	return hash, hash * m1
}

// lookup returns the id of entry w.
func (v *vocabTable) lookup(w []byte) (int32, bool) {
	if len(w) > 255 {
		id, ok := v.long[string(w)]
		return id, ok
	}
	key, h := wordKey(w)
	mask := uint64(len(v.slots) - 1)
	for i := h >> v.shift; ; i = (i + 1) & mask {
		s := &v.slots[i]
		if s.meta == 0 {
			break
		}
		if s.key == key && int(s.meta&0xff) == len(w) && (len(w) <= 8 || v.sameLong(s.meta>>8, w)) {
			return s.id, true
		}
	}
	if len(v.long) > 0 {
		id, ok := v.long[string(w)]
		return id, ok
	}
	return 0, false
}

// sameLong reports whether the entry at blob[off:] is w, which is longer
// than 8 bytes. Up to 16 bytes it compares the first 8 and the last 8
// (which overlap) as two integers.
func (v *vocabTable) sameLong(off uint32, w []byte) bool {
	e := v.blob[off : off+uint32(len(w))]
	if len(w) <= 16 {
		n := len(w)
		return binary.LittleEndian.Uint64(e) == binary.LittleEndian.Uint64(w) &&
			binary.LittleEndian.Uint64(e[n-8:]) == binary.LittleEndian.Uint64(w[n-8:])
	}
	return string(e) == string(w)
}

// trie is a byte trie over vocabulary entries, flattened into one array of
// edges: a node is the run of its outgoing edges, sorted by label, and each
// edge says where its child's run is. Runs are laid out depth first, so a
// walk down a long word reads mostly consecutive memory, and each step reads
// one run instead of a node, its labels and its children apart.
type trie struct {
	root  [256]trieEdge // the root's edge for each first byte; n == 0 and id < 0 if absent
	edges []trieEdge
}

// trieEdge is one edge of a trie and what is known of its child.
type trieEdge struct {
	label byte
	n     uint16 // the child's edges are edges[first:first+n]
	id    int32  // vocabulary id of the entry ending at the child, or -1
	first uint32
}

// buildNode is a trie node under construction.
type buildNode struct {
	id   int32
	kids map[byte]*buildNode
}

// newTrie builds a trie over the keys of entries (all non-empty).
func newTrie(entries map[string]int32) *trie {
	root := &buildNode{id: -1}
	for key, id := range entries {
		n := root
		for i := 0; i < len(key); i++ {
			c := n.kids[key[i]]
			if c == nil {
				if n.kids == nil {
					n.kids = make(map[byte]*buildNode)
				}
				c = &buildNode{id: -1}
				n.kids[key[i]] = c
			}
			n = c
		}
		n.id = id
	}
	t := &trie{edges: make([]trieEdge, 0, len(entries)*4)}
	// run appends the edges of n's children and, depth first, their runs;
	// it returns where n's run starts.
	var run func(n *buildNode) uint32
	run = func(n *buildNode) uint32 {
		keys := make([]byte, 0, len(n.kids))
		for b := range n.kids {
			keys = append(keys, b)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		first := uint32(len(t.edges))
		for _, b := range keys {
			t.edges = append(t.edges, trieEdge{label: b, id: n.kids[b].id, n: uint16(len(n.kids[b].kids))})
		}
		for i, b := range keys {
			if k := n.kids[b]; len(k.kids) > 0 {
				t.edges[first+uint32(i)].first = run(k)
			}
		}
		return first
	}
	for b := range t.root {
		t.root[b] = trieEdge{label: byte(b), id: -1}
		if n := root.kids[byte(b)]; n != nil {
			t.root[b] = trieEdge{label: byte(b), id: n.id, n: uint16(len(n.kids))}
			if len(n.kids) > 0 {
				t.root[b].first = run(n)
			}
		}
	}
	return t
}

// longest returns the length and id of the longest entry that is a prefix of
// w, or 0 and -1 if there is none.
func (t *trie) longest(w []byte) (end int, id int32) {
	id = -1
	if len(w) == 0 {
		return 0, -1
	}
	e := &t.root[w[0]]
	for i := 1; ; i++ {
		if e.id >= 0 {
			end, id = i, e.id
		}
		if i == len(w) || e.n == 0 {
			return end, id
		}
		run, c := t.edges[e.first:e.first+uint32(e.n)], w[i]
		k := 0
		for k < len(run) && run[k].label < c {
			k++
		}
		if k == len(run) || run[k].label != c {
			return end, id
		}
		e = &run[k]
	}
}

// emitWord adds the ids of one pre-tokenized, normalized word of nchars
// characters (w holds at least its first maxChars+1 characters).
func (t *Tokenizer) emitWord(s *state, w []byte, nchars int) {
	if nchars > t.maxChars {
		s.add(t.unkID)
		return
	}
	if id, ok := t.vocab.lookup(w); ok {
		s.add(id)
		return
	}
	pieces := s.pieces[:0]
	for start := 0; start < len(w); {
		tr := t.cont
		if start == 0 {
			tr = t.first
		}
		end, id := tr.longest(w[start:])
		if end == 0 {
			s.pieces = pieces
			s.add(t.unkID)
			return
		}
		pieces = append(pieces, id)
		start += end
	}
	for _, id := range pieces {
		s.add(id)
	}
	s.pieces = pieces
}
