package tokenizer

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// refVocab is the test model's WordPiece vocabulary, read on its own.
func refVocab(tb testing.TB) map[string]int32 {
	tb.Helper()
	data, err := os.ReadFile(modelPath)
	if err != nil {
		tb.Fatal(err)
	}
	var f struct {
		Model modelJSON `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		tb.Fatal(err)
	}
	return f.Model.Vocab
}

// refWordPiece is Hugging Face's WordPiece for one word, written plainly:
// the longest entry at each position (with "##" after the first), by
// substring lookups in a map, or [UNK] for the whole word.
func refWordPiece(vocab map[string]int32, unk int32, word string) []int32 {
	var ids []int32
	for start := 0; start < len(word); {
		end := len(word)
		for ; end > start; end-- {
			sub := word[start:end]
			if start > 0 {
				sub = "##" + sub
			}
			if id, ok := vocab[sub]; ok {
				ids = append(ids, id)
				break
			}
		}
		if end == start {
			return []int32{unk}
		}
		start = end
	}
	return ids
}

// wordIDs is emitWord's answer for word alone.
func wordIDs(tok *Tokenizer, word string) []int32 {
	s := &state{limit: math.MaxInt}
	tok.emitWord(s, []byte(word), utf8.RuneCountInString(word))
	return s.out
}

// TestWordPieceMatchesReference checks the hash table and trie lookups of
// emitWord against refWordPiece: every vocabulary entry as a word (so
// every slot and the long entries' bytes are read back), entries with and
// without their "##", words made of 1 to 5 entries (and so of lengths on
// both sides of the 8 and 16 bytes where the table's comparisons change),
// ASCII and not, and words that end in a byte no entry continues with.
func TestWordPieceMatchesReference(t *testing.T) {
	tok, _ := load(t)
	vocab := refVocab(t)
	entries := make([]string, 0, len(vocab))
	for e := range vocab {
		entries = append(entries, e)
	}
	slices.Sort(entries)
	check := func(word string) {
		t.Helper()
		if utf8.RuneCountInString(word) > tok.maxChars {
			return
		}
		if got, want := wordIDs(tok, word), refWordPiece(vocab, tok.unkID, word); !slices.Equal(got, want) {
			t.Fatalf("word %q: emitWord %v, reference %v", word, got, want)
		}
	}
	for _, e := range entries {
		check(e)
		if rest, ok := strings.CutPrefix(e, "##"); ok && rest != "" {
			check(rest)
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	tails := []string{"", "q", "zz", "\u00e9", "\u4e2d", "\U0001F600", "x\u0301", "9"}
	lengths := map[int]bool{}
	for range 200000 {
		var b strings.Builder
		for range 1 + rng.IntN(5) {
			e := entries[rng.IntN(len(entries))]
			b.WriteString(strings.TrimPrefix(e, "##"))
		}
		b.WriteString(tails[rng.IntN(len(tails))])
		lengths[b.Len()] = true
		check(b.String())
	}
	for _, n := range []int{8, 9, 16, 17} {
		if !lengths[n] {
			t.Errorf("no word of %d bytes was tried", n)
		}
	}
	long := strings.Repeat("ab", 150) // over 255 bytes: the table's map
	check(long)
}

// TestVocabTable checks lookup on a small table: entries of every length
// around the in-slot limit (8 bytes) and the two-integer comparison (16),
// entries that differ only in their last byte or first, and entries past
// the 255 bytes a slot can say, which live in the table's map.
func TestVocabTable(t *testing.T) {
	entries := map[string]int32{}
	id := int32(0)
	for n := 1; n <= 40; n++ {
		for _, c := range "abé" {
			base := strings.Repeat(string(c), n)
			entries[base] = id
			entries[base[:len(base)-1]+"z"] = id + 1
			entries["z"+base[1:]] = id + 2
			id += 3
		}
	}
	entries[strings.Repeat("x", 256)] = id
	entries[strings.Repeat("x", 300)] = id + 1
	v := newVocabTable(entries)
	for e, want := range entries {
		w := []byte(e) // capacity == length: wordKey's short path reads byte by byte
		if got, ok := v.lookup(w); !ok || got != want {
			t.Fatalf("lookup(%q) = %d, %v; want %d", e, got, ok, want)
		}
		w = append(make([]byte, 0, len(e)+8), e...)
		if got, ok := v.lookup(w); !ok || got != want {
			t.Fatalf("lookup(%q) with spare capacity = %d, %v; want %d", e, got, ok, want)
		}
		for _, miss := range []string{e + "y", "y" + e, e[:len(e)-1] + "y"} {
			if _, in := entries[miss]; in {
				continue
			}
			if got, ok := v.lookup([]byte(miss)); ok {
				t.Fatalf("lookup(%q), not an entry, = %d", miss, got)
			}
		}
	}
	if len(v.long) != 2 {
		t.Errorf("%d entries in the map, want the 2 over 255 bytes", len(v.long))
	}
	// The bytes check behind the hash (which a lookup reaches only on a
	// 64-bit hash collision), for each length and each differing byte.
	for n := 9; n <= 40; n++ {
		e := []byte(strings.Repeat("k", n))
		v := &vocabTable{blob: append([]byte("pad"), e...)}
		if !v.sameLong(3, e) {
			t.Fatalf("sameLong: %d bytes not equal to themselves", n)
		}
		for i := range n {
			w := slices.Clone(e)
			w[i] = 'j'
			if v.sameLong(3, w) {
				t.Fatalf("sameLong: %d bytes equal with byte %d changed", n, i)
			}
		}
	}
}

// FuzzWordPiece compares emitWord with refWordPiece on arbitrary words
// (valid UTF-8 without whitespace or punctuation, as the pre-tokenizer
// hands them over).
func FuzzWordPiece(f *testing.F) {
	tok, _ := load(f)
	vocab := refVocab(f)
	for _, w := range []string{"hello", "unaffable", "congressional", "xyzzy", "caf\u00e9", "\u4e2d\u6587", "aaaaaaaaaaaaaaaaa", "a\u0301b"} {
		f.Add(w)
	}
	f.Fuzz(func(t *testing.T, word string) {
		if !utf8.ValidString(word) || word == "" || utf8.RuneCountInString(word) > tok.maxChars {
			return
		}
		for _, r := range word {
			if tok.prop(r)&(pSpace|pPunct) != 0 {
				return
			}
		}
		if got, want := wordIDs(tok, word), refWordPiece(vocab, tok.unkID, word); !slices.Equal(got, want) {
			t.Fatalf("word %q: emitWord %v, reference %v", word, got, want)
		}
	})
}
