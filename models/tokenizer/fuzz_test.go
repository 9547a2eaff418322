package tokenizer

import (
	"math"
	"slices"
	"testing"
	"unicode/utf8"
)

// encodeRunes is a reference encoder for the fuzz test: it sends every rune,
// ASCII included, through the non-ASCII path (normRune), so it checks the
// ASCII fast path against the general one.
func encodeRunes(t *Tokenizer, text string) []int32 {
	s := &state{limit: math.MaxInt, out: []int32{t.clsID}}
	segment := func(seg string) {
		for i := 0; i < len(seg); {
			r, size := utf8.DecodeRuneInString(seg[i:])
			i += size
			t.normRune(s, r)
		}
		t.flushPending(s)
		t.flushWord(s)
	}
	if t.added == nil {
		segment(text)
	} else {
		for len(text) > 0 {
			i, size, id := t.added.find(text)
			segment(text[:i])
			if size == 0 {
				break
			}
			s.add(id)
			text = text[i+size:]
		}
	}
	return append(s.out, t.sepID)
}

func FuzzEncode(f *testing.F) {
	tok, gold := load(f)
	for i, g := range gold {
		if g.Set == "edge" || i%500 == 0 {
			f.Add(g.Text, len(g.IDs)/2)
		}
	}
	f.Add("a\xffb\xc3", 3)
	f.Add("e\u0301\u0316\U0001D165\u302e x", 0)
	f.Add("[MASK][CLS]x[SEP", 4)
	f.Fuzz(func(t *testing.T, text string, maxLen int) {
		full, n := tok.Encode(nil, text, 0)
		if n != len(full) {
			t.Fatalf("n = %d, len = %d", n, len(full))
		}
		if len(full) < 2 || full[0] != tok.CLSID() || full[len(full)-1] != tok.SEPID() {
			t.Fatalf("not [CLS] ... [SEP]: %v", full)
		}
		for _, id := range full {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("id %d out of range", id)
			}
		}
		if ref := encodeRunes(tok, text); !slices.Equal(full, ref) {
			t.Fatalf("fast path %v, rune path %v", full, ref)
		}
		maxLen %= 1 << 12
		got, gotN := tok.Encode(nil, text, maxLen)
		if gotN != n {
			t.Fatalf("maxLen %d: n = %d, want %d", maxLen, gotN, n)
		}
		if maxLen <= 0 {
			if !slices.Equal(got, full) {
				t.Fatalf("maxLen %d truncated", maxLen)
			}
			return
		}
		want := full
		if n > maxLen {
			want = append(slices.Clone(full[:max(maxLen, 2)-1]), tok.SEPID())
		}
		if len(got) > max(maxLen, 2) || !slices.Equal(got, want) {
			t.Fatalf("maxLen %d: got %v, want %v", maxLen, got, want)
		}
	})
}
