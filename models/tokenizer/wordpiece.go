package tokenizer

import (
	"bytes"
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
// itself, so most lookups touch one cache line and compare one integer.
type vocabTable struct {
	slots []vocabSlot // len is a power of two, at most half full
	shift uint        // 64 - log2(len(slots))
	blob  []byte      // the bytes of the entries longer than 8 bytes
	long  map[string]int32
}

// vocabSlot is one slot of a vocabTable.
type vocabSlot struct {
	key uint64 // the entry's bytes, little-endian, if n <= 8; else its hash
	id  int32
	n   uint8  // length in bytes; 0 for an empty slot
	off uint32 // offset of the entry in blob, if n > 8
}

// newVocabTable builds the table of entries (all non-empty).
func newVocabTable(entries map[string]int32) *vocabTable {
	size := 1 << bits.Len(uint(2*len(entries)))
	v := &vocabTable{
		slots: make([]vocabSlot, size),
		shift: uint(64 - bits.TrailingZeros(uint(size))),
		long:  make(map[string]int32),
	}
	for w, id := range entries {
		if len(w) > 255 || len(v.blob)+len(w) > 1<<31 {
			v.long[w] = id // never in real vocabularies
			continue
		}
		b := []byte(w)
		key, h := wordKey(b)
		i := h >> v.shift
		for v.slots[i].n != 0 {
			i = (i + 1) & uint64(size-1)
		}
		v.slots[i] = vocabSlot{key: key, id: id, n: uint8(len(b)), off: uint32(len(v.blob))}
		if len(b) > 8 {
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
		if s.n == 0 {
			return 0, false
		}
		if s.key == key && int(s.n) == len(w) && (len(w) <= 8 || string(v.blob[s.off:s.off+uint32(s.n)]) == string(w)) {
			return s.id, true
		}
	}
}

// trie is a byte trie over vocabulary entries, flattened into arrays. Node 0
// is unused so that 0 can mean "no child".
type trie struct {
	root   [256]int32 // child of the root for each first byte
	nodes  []trieNode
	labels []byte  // edge labels; a node's edges are labels[lo:hi], sorted
	kids   []int32 // kids[i] is the child along labels[i]
}

// trieNode is one trie node.
type trieNode struct {
	id     int32 // vocabulary id of the entry ending here, or -1
	lo, hi uint32
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
	t := &trie{nodes: make([]trieNode, 1, len(entries)*4)}
	var add func(n *buildNode) int32
	add = func(n *buildNode) int32 {
		idx := int32(len(t.nodes))
		t.nodes = append(t.nodes, trieNode{id: n.id})
		keys := make([]byte, 0, len(n.kids))
		for b := range n.kids {
			keys = append(keys, b)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		lo := len(t.labels)
		t.labels = append(t.labels, keys...)
		t.kids = append(t.kids, make([]int32, len(keys))...)
		t.nodes[idx].lo, t.nodes[idx].hi = uint32(lo), uint32(len(t.labels))
		for i, b := range keys {
			t.kids[lo+i] = add(n.kids[b])
		}
		return idx
	}
	for b, n := range root.kids {
		t.root[b] = add(n)
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
	n := t.root[w[0]]
	for i := 1; n != 0; i++ {
		nd := &t.nodes[n]
		if nd.id >= 0 {
			end, id = i, nd.id
		}
		if i == len(w) {
			break
		}
		k := bytes.IndexByte(t.labels[nd.lo:nd.hi], w[i])
		if k < 0 {
			break
		}
		n = t.kids[int(nd.lo)+k]
	}
	return end, id
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
