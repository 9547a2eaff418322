// Package tokenizer is an exact, fast Hugging Face BERT WordPiece tokenizer.
//
// It loads a Hugging Face tokenizer.json (BertNormalizer, BertPreTokenizer,
// WordPiece model, [CLS] $A [SEP] post-processor) and produces the ids that
// Hugging Face tokenizers 0.23.2 produces for the same text, including for
// accents, CJK, emoji, control, zero-width and unassigned characters. The
// package tests check every id of 6,052 texts encoded by tokenizers 0.23.2.
//
// # Algorithm
//
// Encode first splits the text at added tokens such as [MASK] (matched
// leftmost-longest in the raw text, before normalization, as tokenizers
// does). Each remaining segment is normalized and split into words in a
// single pass: bytes below 0x80 go through a 256-entry class table (word
// byte, lowercased; whitespace; punctuation; removed control character), so
// ASCII text never leaves the fast path. Other runes go through
// BertNormalizer exactly: clean_text, Chinese-character padding, strip
// accents (NFD with tokenizers' Unicode 9 normalization data, then removal of
// category Mn), lowercase (Rust's char::to_lowercase), then
// BertPreTokenizer's split on whitespace and punctuation. Character classes
// come from tables of the Unicode 8 data tokenizers links, not Go's Unicode
// 15 tables; see unicode_tables.go for the differences. A finished word is
// looked up whole in a hash of the vocabulary (most words are entries);
// otherwise WordPiece splits it greedily, longest match first, by walking a
// byte trie.
//
// # Speed
//
// BenchmarkEncode, one goroutine encoding the 6,000 State of the Union
// sentences of the tests, runs at about 11.5 M tokens/s (on 2 cores,
// Intel(R) Xeon(R) Processor, measured while the machine was otherwise
// busy); BenchmarkEncodeParallel reaches about 15 M tokens/s on both cores.
// Hugging Face's Rust tokenizer does about 0.31 M tokens/s per thread. Once
// warm, Encode allocates nothing beyond growing the caller's slice.
//
// # Why hand-written
//
// The Go tokenizers checked do not reproduce Hugging Face's ids or are slow:
// go-huggingface's tokenizer runs at about 70 k tokens/s and mishandles
// zero-width characters and soft hyphens, sugarme/tokenizer strips accents
// differently, and daulet/tokenizers needs Hugging Face's Rust library
// linked in.
package tokenizer

import (
	"errors"
	"math"
	"strings"
	"sync"
)

// ErrUnsupported is wrapped by the errors for tokenizer.json files that use
// a feature this package does not implement (another model, normalizer,
// pre-tokenizer or post-processor, or added-token options).
var ErrUnsupported = errors.New("unsupported tokenizer.json feature")

// ErrInvalid is wrapped by the errors for tokenizer.json files that are
// malformed or inconsistent (bad JSON, missing special tokens, bad ids).
var ErrInvalid = errors.New("invalid tokenizer.json")

// Byte classes of the ASCII fast path.
const (
	cWord  uint8 = iota // part of a word; appended lowercased
	cSpace              // ends the current word
	cPunct              // a word of its own
	cDrop               // removed by clean_text
	cHigh               // first byte of a non-ASCII rune
)

// Tokenizer encodes text into Hugging Face BERT WordPiece ids. It is
// immutable and safe for concurrent use.
type Tokenizer struct {
	vocab       *vocabTable // whole vocabulary entries
	first, cont *trie       // entries, and continuing entries without their prefix
	tokens      []string    // id -> token; "" for unused ids
	maxChars    int         // max_input_chars_per_word
	idLimit     int32       // ids must be below it (while loading)
	unkID       int32
	clsID       int32
	sepID       int32
	padID       int32

	cleanText, chinese, stripAccents, lowercase bool

	ascii      [256]uint8 // byte class
	lowerASCII [128]byte  // byte as appended to a word
	punctID    [128]int32 // id of an ASCII punctuation character's word
	props      *[0x10000]uint8

	added *addedMatcher // nil if there are no added tokens

	pool sync.Pool // of *state
}

// state is the scratch space of one Encode call.
type state struct {
	out    []int32
	n      int // word pieces produced, kept or not
	limit  int // word pieces to keep
	word   []byte
	nchars int
	pieces []int32
	pend   []pending
}

// add records one word piece, keeping it if the limit allows.
func (s *state) add(id int32) {
	if s.n < s.limit {
		s.out = append(s.out, id)
	}
	s.n++
}

// maxScratch is the capacity beyond which scratch buffers are not pooled.
const maxScratch = 1 << 16

// Encode appends to dst the ids of text with [CLS] before and [SEP] after it
// and returns the extended slice, and n, the length the full encoding has.
//
// If maxLen > 0 and n > maxLen, the word pieces are cut from the end so that
// the result is exactly maxLen long and still ends in [SEP] (Hugging Face
// truncation with direction right and stride 0); callers can compare n with
// maxLen to reject over-long input instead. maxLen <= 0 means no limit, and
// maxLen == 1 is treated as 2, which keeps only [CLS] and [SEP].
//
// Invalid UTF-8 does not fail: each invalid byte is read as U+FFFD, which
// clean_text removes. Scratch space is pooled, so once warm Encode allocates
// nothing except when it grows dst.
func (t *Tokenizer) Encode(dst []int32, text string, maxLen int) (ids []int32, n int) {
	s, _ := t.pool.Get().(*state)
	if s == nil {
		s = new(state)
	}
	s.limit = math.MaxInt
	if maxLen > 0 {
		s.limit = max(maxLen, 2) - 2
	}
	s.out, s.n = append(dst, t.clsID), 0
	if t.added == nil {
		t.encodeSegment(s, text)
	} else {
		for len(text) > 0 {
			i, size, id := t.added.find(text)
			t.encodeSegment(s, text[:i])
			if size == 0 {
				break
			}
			s.add(id)
			text = text[i+size:]
		}
	}
	ids, n = append(s.out, t.sepID), s.n+2
	s.out = nil
	if cap(s.word) > maxScratch {
		s.word = nil
	}
	if cap(s.pend) > maxScratch {
		s.pend = nil
	}
	if cap(s.pieces) > maxScratch {
		s.pieces = nil
	}
	t.pool.Put(s)
	return ids, n
}

// encodeSegment normalizes, pre-tokenizes and tokenizes text, which contains
// no added token.
func (t *Tokenizer) encodeSegment(s *state, text string) {
	w, nc, maxChars := s.word[:0], 0, t.maxChars
	for i := 0; i < len(text); {
		c := text[i]
		switch t.ascii[c] {
		case cWord:
			if nc <= maxChars {
				w = append(w, t.lowerASCII[c])
			}
			nc++
			i++
		case cSpace:
			if nc > 0 {
				t.emitWord(s, w, nc)
				w, nc = w[:0], 0
			}
			i++
		case cPunct:
			if nc > 0 {
				t.emitWord(s, w, nc)
				w, nc = w[:0], 0
			}
			s.add(t.punctID[c])
			i++
		case cDrop:
			i++
		default:
			s.word, s.nchars = w, nc
			i = t.slowRun(s, text, i)
			w, nc = s.word, s.nchars
		}
	}
	if nc > 0 {
		t.emitWord(s, w, nc)
	}
	s.word, s.nchars = w[:0], 0
}

// VocabSize returns the number of ids: one more than the largest id of the
// vocabulary and the added tokens. Every id Encode returns is below it.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// PadID returns the id of the padding token ([PAD]).
func (t *Tokenizer) PadID() int32 { return t.padID }

// CLSID returns the id of the token Encode puts first ([CLS]).
func (t *Tokenizer) CLSID() int32 { return t.clsID }

// SEPID returns the id of the token Encode puts last ([SEP]).
func (t *Tokenizer) SEPID() int32 { return t.sepID }

// UNKID returns the id of the unknown-word token ([UNK]).
func (t *Tokenizer) UNKID() int32 { return t.unkID }

// Token returns the token string of id, and false if id is not in use.
func (t *Tokenizer) Token(id int32) (string, bool) {
	if id < 0 || int(id) >= len(t.tokens) || t.tokens[id] == "" {
		return "", false
	}
	return t.tokens[id], true
}

// addedMatcher finds added tokens (all matched in the raw text).
type addedMatcher struct {
	byFirst [256][]addedToken // by first byte, longest first
	firsts  []byte            // the distinct first bytes
}

// addedToken is one added token to match.
type addedToken struct {
	content string
	id      int32
}

// find returns the leftmost, longest added token in text: its start, its
// length and its id; or len(text), 0, 0 if there is none.
func (m *addedMatcher) find(text string) (start, size int, id int32) {
	for i := 0; i < len(text); i++ {
		if len(m.firsts) == 1 {
			j := strings.IndexByte(text[i:], m.firsts[0])
			if j < 0 {
				break
			}
			i += j
		}
		for _, a := range m.byFirst[text[i]] {
			if strings.HasPrefix(text[i:], a.content) {
				return i, len(a.content), a.id
			}
		}
	}
	return len(text), 0, 0
}
