package cache

import (
	"hash/maphash"
	"unique"
)

// seed1 and seed2 are drawn at random once per process: keys are meaningful
// only inside the process that made them, and an outsider who does not know
// the seeds cannot aim texts at one another's keys.
var seed1, seed2 = maphash.MakeSeed(), maphash.MakeSeed()

// EntryKey identifies one cached vector: the model, the options that change
// the vector, and the text. It is small and fixed-size (48 bytes) however
// long the text: the text is kept as its length and two independent 64-bit
// hashes (hash/maphash under two random seeds), while the model and the
// options are kept exactly. Two different texts share a key only if they
// have the same length and both hashes collide; among n distinct texts of
// one length the chance that any two do is about n²/2¹²⁹ (below 10⁻²¹ for a
// billion texts).
//
// The zero EntryKey is a valid key (empty model, default options, empty
// text) that no real request is expected to use.
type EntryKey struct {
	model     unique.Handle[string] // interned: one pointer however many entries
	normalize int
	dims      int
	textLen   int
	h1, h2    uint64
}

// Key returns the cache key of text embedded by model with the given
// options. normalize and dims are whatever the server uses to tell the
// options apart (models.Normalization and Options.Dimensions); callers that
// cache vectors before options are applied pass 0 for both.
//
// Truncation is deliberately not part of the key: a text that fits the
// model gives the same vector either way, so a server must refuse an
// over-long text under "reject" before it consults the cache (the tokenizer
// tells it), or the cached vector of the truncated text would be returned.
//
// Key costs two passes of maphash over the text plus one lookup of the
// interned model id.
func Key(model string, normalize, dims int, text string) EntryKey {
	return EntryKey{
		model:     unique.Make(model),
		normalize: normalize,
		dims:      dims,
		textLen:   len(text),
		h1:        maphash.String(seed1, text),
		h2:        maphash.String(seed2, text),
	}
}
