package tokenizer

import (
	"sort"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// This file is the non-ASCII path: BertNormalizer (clean_text,
// handle_chinese_chars, strip_accents, lowercase, in that order) followed by
// BertPreTokenizer's split on whitespace and punctuation, one rune at a time.
// The ASCII fast path in tokenizer.go does the same for bytes below 0x80 with
// a 256-entry class table.

// Character property bits, from the tables in unicode_tables.go.
const (
	pOther   uint8 = 1 << iota // removed by clean_text (except \t, \n, \r)
	pSpace                     // Rust char::is_whitespace
	pPunct                     // split off by BertPreTokenizer
	pMn                        // removed by strip_accents after NFD
	pChinese                   // surrounded by spaces by handle_chinese_chars
	pInert                     // a plain starter for tokenizers' Unicode 9 NFD
)

// bmpProps holds the property bits of every rune below U+10000; it is built
// once, on first use.
var bmpProps = sync.OnceValue(func() *[0x10000]uint8 {
	var t [0x10000]uint8
	for _, tab := range propTables {
		for _, r := range tab.ranges {
			for c := r.lo; c <= r.hi && c < 0x10000; c++ {
				t[c] |= tab.bit
			}
		}
	}
	for c := 0; c < utf8.RuneSelf; c++ {
		if isASCIIPunct(byte(c)) {
			t[c] |= pPunct
		}
	}
	return &t
})

// propTables pairs each property bit with its ranges.
var propTables = []struct {
	bit    uint8
	ranges []rng
}{
	{pOther, otherRanges},
	{pSpace, spaceRanges},
	{pPunct, punctRanges},
	{pMn, mnRanges},
	{pChinese, chineseRanges},
	{pInert, inertRanges},
}

// isASCIIPunct reports whether b is ASCII punctuation (Rust's
// char::is_ascii_punctuation), which BertPreTokenizer always splits off.
func isASCIIPunct(b byte) bool {
	return b >= '!' && b <= '/' || b >= ':' && b <= '@' || b >= '[' && b <= '`' || b >= '{' && b <= '~'
}

// astralProps returns the property bits of a rune at or above U+10000.
func astralProps(r rune) uint8 {
	var p uint8
	for _, tab := range propTables {
		rs := tab.ranges
		i := sort.Search(len(rs), func(i int) bool { return rs[i].hi >= r })
		if i < len(rs) && rs[i].lo <= r {
			p |= tab.bit
		}
	}
	return p
}

// pending is a kept non-starter waiting for canonical reordering.
type pending struct {
	r   rune
	ccc uint8
}

// Hangul syllable decomposition constants (Unicode chapter 3.12).
const (
	hangulS     = 0xAC00
	hangulL     = 0x1100
	hangulV     = 0x1161
	hangulT     = 0x11A7
	hangulTN    = 28
	hangulNN    = 21 * hangulTN
	hangulCount = 19 * hangulNN
)

// prop returns the property bits of r.
func (t *Tokenizer) prop(r rune) uint8 {
	if uint32(r) < 0x10000 {
		return t.props[r]
	}
	return astralProps(r)
}

// slowRun normalizes and pre-tokenizes text from byte i, which starts a
// non-ASCII rune, up to the next ASCII byte that clean_text keeps (every such
// byte is an NFD starter, so canonical reordering never crosses it). It
// returns the index where it stopped. Invalid UTF-8 decodes to U+FFFD a byte
// at a time.
func (t *Tokenizer) slowRun(s *state, text string, i int) int {
	for i < len(text) {
		c := text[i]
		if c < utf8.RuneSelf {
			if t.ascii[c] != cDrop {
				break
			}
			i++ // removed before NFD: marks on both sides still reorder together
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		t.normRune(s, r)
	}
	t.flushPending(s)
	return i
}

// normRune applies clean_text and handle_chinese_chars to r.
func (t *Tokenizer) normRune(s *state, r rune) {
	p := t.prop(r)
	if t.cleanText {
		if r == utf8.RuneError || p&pOther != 0 && r != '\t' && r != '\n' && r != '\r' {
			return
		}
		if p&pSpace != 0 {
			r, p = ' ', t.props[' ']
		}
	}
	if t.chinese && p&pChinese != 0 {
		t.decompose(s, ' ')
		t.decompose(s, r)
		t.decompose(s, ' ')
		return
	}
	t.decompose(s, r)
}

// decompose applies strip_accents (NFD, then removal of Mn) to r. Kept
// non-starters wait in s.pend for canonical reordering; removing Mn before
// the stable sort gives the same order as removing it after.
func (t *Tokenizer) decompose(s *state, r rune) {
	if !t.stripAccents {
		t.lower(s, r)
		return
	}
	if r < 0xC0 || t.prop(r)&pInert != 0 {
		t.starter(s, r)
		return
	}
	if r >= hangulS && r < hangulS+hangulCount {
		si := r - hangulS
		t.starter(s, hangulL+si/hangulNN)
		t.starter(s, hangulV+si%hangulNN/hangulTN)
		if ti := si % hangulTN; ti != 0 {
			t.starter(s, hangulT+ti)
		}
		return
	}
	var buf [utf8.UTFMax]byte
	props := norm.NFD.Properties(utf8.AppendRune(buf[:0], r))
	d := props.Decomposition()
	if d == nil {
		t.decomposed(s, r, props.CCC())
		return
	}
	for len(d) > 0 {
		props = norm.NFD.Properties(d)
		c, size := utf8.DecodeRune(d)
		d = d[size:]
		t.decomposed(s, c, props.CCC())
	}
}

// decomposed handles one rune of an NFD decomposition with combining class
// ccc.
func (t *Tokenizer) decomposed(s *state, r rune, ccc uint8) {
	if t.prop(r)&pMn != 0 {
		return
	}
	if ccc != 0 {
		s.pend = append(s.pend, pending{r, ccc})
		return
	}
	t.starter(s, r)
}

// starter passes on a combining class 0 rune, after the non-starters before
// it.
func (t *Tokenizer) starter(s *state, r rune) {
	if len(s.pend) > 0 {
		t.flushPending(s)
	}
	t.lower(s, r)
}

// flushPending passes on the waiting non-starters in canonical order (a
// stable sort by combining class).
func (t *Tokenizer) flushPending(s *state) {
	p := s.pend
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j-1].ccc > p[j].ccc; j-- {
			p[j-1], p[j] = p[j], p[j-1]
		}
	}
	for _, x := range p {
		t.lower(s, x.r)
	}
	s.pend = p[:0]
}

// lower applies lowercase: Rust's char::to_lowercase, which maps U+0130 to
// two runes and knows the Unicode 16 letters.
func (t *Tokenizer) lower(s *state, r rune) {
	if t.lowercase && r >= utf8.RuneSelf {
		if r == 0x130 {
			t.split(s, 'i')
			t.split(s, 0x307)
			return
		}
		if l := unicode.ToLower(r); l != r {
			r = l
		} else {
			r = lowerUnicode16(r)
		}
	} else if t.lowercase && r >= 'A' && r <= 'Z' {
		r += 'a' - 'A'
	}
	t.split(s, r)
}

// split is BertPreTokenizer for one normalized rune: whitespace ends the
// current word, punctuation is a word of its own, anything else extends the
// current word.
func (t *Tokenizer) split(s *state, r rune) {
	p := t.prop(r)
	switch {
	case p&pSpace != 0:
		t.flushWord(s)
	case p&pPunct != 0:
		t.flushWord(s)
		s.word = utf8.AppendRune(s.word, r)
		s.nchars = 1
		t.flushWord(s)
	default:
		if s.nchars <= t.maxChars {
			s.word = utf8.AppendRune(s.word, r)
		}
		s.nchars++
	}
}

// flushWord tokenizes the current word, if any.
func (t *Tokenizer) flushWord(s *state) {
	if s.nchars > 0 {
		t.emitWord(s, s.word, s.nchars)
		s.word, s.nchars = s.word[:0], 0
	}
}
