package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

// FromFile reads and parses a Hugging Face tokenizer.json file. Errors name
// the file and what is wrong or unsupported in it.
func FromFile(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("embedd/tokenizer: %w", err)
	}
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("embedd/tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// FromJSON parses the contents of a Hugging Face tokenizer.json file. Errors
// say what is wrong or unsupported in it and wrap ErrInvalid or
// ErrUnsupported.
func FromJSON(data []byte) (*Tokenizer, error) {
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("embedd/tokenizer: %w", err)
	}
	return t, nil
}

// fileJSON is the part of tokenizer.json this package reads. truncation and
// padding are only consulted leniently: Encode takes its limit explicitly.
type fileJSON struct {
	AddedTokens   []addedJSON     `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Padding       json.RawMessage `json:"padding"`
	Model         json.RawMessage `json:"model"`
}

// addedJSON is one entry of added_tokens.
type addedJSON struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
}

// modelJSON is the WordPiece model.
type modelJSON struct {
	Type                    string           `json:"type"`
	UnkToken                string           `json:"unk_token"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	MaxInputCharsPerWord    *int             `json:"max_input_chars_per_word"`
	Vocab                   map[string]int32 `json:"vocab"`
}

// normalizerJSON is a BertNormalizer; absent fields take tokenizers'
// defaults.
type normalizerJSON struct {
	Type               string `json:"type"`
	CleanText          *bool  `json:"clean_text"`
	HandleChineseChars *bool  `json:"handle_chinese_chars"`
	StripAccents       *bool  `json:"strip_accents"`
	Lowercase          *bool  `json:"lowercase"`
}

// postJSON is a TemplateProcessing, BertProcessing or RobertaProcessing
// post-processor.
type postJSON struct {
	Type   string `json:"type"`
	Single []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int32 `json:"ids"`
	} `json:"special_tokens"`
	CLS []json.RawMessage `json:"cls"`
	SEP []json.RawMessage `json:"sep"`
}

// parse builds a Tokenizer from tokenizer.json contents.
func parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	t := &Tokenizer{props: bmpProps()}
	if err := t.parseModel(f.Model); err != nil {
		return nil, err
	}
	if err := t.parseAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	if err := t.parseNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if err := parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if err := t.parsePostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if err := t.findPad(f.Padding); err != nil {
		return nil, err
	}
	t.buildASCII()
	return t, nil
}

// parseModel reads the WordPiece model and its vocabulary.
func (t *Tokenizer) parseModel(raw json.RawMessage) error {
	if isNull(raw) {
		return fmt.Errorf("%w: no model", ErrInvalid)
	}
	var m modelJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%w: model: %w", ErrInvalid, err)
	}
	if m.Type != "WordPiece" {
		return fmt.Errorf("%w: model type %q (only WordPiece is supported)", ErrUnsupported, m.Type)
	}
	if len(m.Vocab) == 0 {
		return fmt.Errorf("%w: WordPiece model has an empty vocab", ErrInvalid)
	}
	prefix := "##"
	if m.ContinuingSubwordPrefix != nil {
		prefix = *m.ContinuingSubwordPrefix
	}
	t.maxChars = 100
	if m.MaxInputCharsPerWord != nil {
		t.maxChars = max(*m.MaxInputCharsPerWord, 0)
	}
	// Ids are dense in real files; the bound keeps a hostile file from
	// making the id table huge.
	t.idLimit = int32(min(2*len(m.Vocab)+1024, math.MaxInt32))
	vocab := make(map[string]int32, len(m.Vocab))
	cont := make(map[string]int32)
	for tok, id := range m.Vocab {
		if tok == "" {
			continue // never looked up: words are not empty
		}
		if err := t.setToken(tok, id); err != nil {
			return err
		}
		vocab[tok] = id
		if rest, ok := strings.CutPrefix(tok, prefix); ok && rest != "" {
			cont[rest] = id
		}
	}
	t.vocab, t.first, t.cont = newVocabTable(vocab), newTrie(vocab), newTrie(cont)
	unk, ok := vocab[m.UnkToken]
	if !ok {
		return fmt.Errorf("%w: unk_token %q is not in the vocab", ErrInvalid, m.UnkToken)
	}
	t.unkID = unk
	return nil
}

// setToken records tok as the token of id.
func (t *Tokenizer) setToken(tok string, id int32) error {
	if id < 0 || id >= t.idLimit {
		return fmt.Errorf("%w: token %q has id %d, outside [0, %d)", ErrInvalid, tok, id, t.idLimit)
	}
	if int(id) >= len(t.tokens) {
		t.tokens = append(t.tokens, make([]string, int(id)+1-len(t.tokens))...)
	}
	if old := t.tokens[id]; old != "" && old != tok {
		return fmt.Errorf("%w: id %d is both %q and %q", ErrInvalid, id, old, tok)
	}
	t.tokens[id] = tok
	return nil
}

// parseAdded reads added_tokens.
func (t *Tokenizer) parseAdded(list []addedJSON) error {
	m := new(addedMatcher)
	for _, a := range list {
		if a.Content == "" {
			continue
		}
		switch {
		case a.SingleWord, a.LStrip, a.RStrip:
			return fmt.Errorf("%w: added token %q uses single_word, lstrip or rstrip", ErrUnsupported, a.Content)
		case a.Normalized:
			return fmt.Errorf("%w: added token %q has normalized=true", ErrUnsupported, a.Content)
		}
		if err := t.setToken(a.Content, a.ID); err != nil {
			return err
		}
		b := a.Content[0]
		if len(m.byFirst[b]) == 0 {
			m.firsts = append(m.firsts, b)
		}
		m.byFirst[b] = append(m.byFirst[b], addedToken{a.Content, a.ID})
	}
	if len(m.firsts) == 0 {
		return nil
	}
	for _, l := range m.byFirst {
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].content) > len(l[j].content) })
	}
	t.added = m
	return nil
}

// parseNormalizer reads the normalizer: a BertNormalizer, or none.
func (t *Tokenizer) parseNormalizer(raw json.RawMessage) error {
	if isNull(raw) {
		return nil // no normalization at all
	}
	var n normalizerJSON
	if err := json.Unmarshal(raw, &n); err != nil {
		return fmt.Errorf("%w: normalizer: %w", ErrInvalid, err)
	}
	if n.Type != "BertNormalizer" {
		return fmt.Errorf("%w: normalizer type %q (only BertNormalizer is supported)", ErrUnsupported, n.Type)
	}
	t.cleanText = n.CleanText == nil || *n.CleanText
	t.chinese = n.HandleChineseChars == nil || *n.HandleChineseChars
	t.lowercase = n.Lowercase == nil || *n.Lowercase
	// tokenizers strips accents when strip_accents is null and lowercase
	// is on.
	t.stripAccents = t.lowercase
	if n.StripAccents != nil {
		t.stripAccents = *n.StripAccents
	}
	return nil
}

// parsePreTokenizer checks that the pre-tokenizer is BertPreTokenizer.
func parsePreTokenizer(raw json.RawMessage) error {
	var p struct {
		Type string `json:"type"`
	}
	if !isNull(raw) {
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("%w: pre_tokenizer: %w", ErrInvalid, err)
		}
	}
	if p.Type != "BertPreTokenizer" {
		return fmt.Errorf("%w: pre_tokenizer type %q (only BertPreTokenizer is supported)", ErrUnsupported, p.Type)
	}
	return nil
}

// parsePostProcessor finds the ids of the tokens put around the text.
func (t *Tokenizer) parsePostProcessor(raw json.RawMessage) error {
	var p postJSON
	if !isNull(raw) {
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("%w: post_processor: %w", ErrInvalid, err)
		}
	}
	var err error
	switch p.Type {
	case "TemplateProcessing":
		// single must be [CLS] $A [SEP]: one special token, the sequence,
		// one special token.
		s := p.Single
		if len(s) != 3 || s[0].SpecialToken == nil || s[1].Sequence == nil || s[2].SpecialToken == nil {
			return fmt.Errorf("%w: post_processor template is not <special> $A <special>", ErrUnsupported)
		}
		if t.clsID, err = templateID(p, s[0].SpecialToken.ID); err != nil {
			return err
		}
		if t.sepID, err = templateID(p, s[2].SpecialToken.ID); err != nil {
			return err
		}
	case "BertProcessing", "RobertaProcessing":
		if t.clsID, err = pairID(p.CLS, "cls"); err != nil {
			return err
		}
		if t.sepID, err = pairID(p.SEP, "sep"); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: post_processor type %q (TemplateProcessing, BertProcessing or RobertaProcessing adding [CLS] and [SEP] is needed)", ErrUnsupported, p.Type)
	}
	for _, id := range []int32{t.clsID, t.sepID} {
		if _, ok := t.Token(id); !ok {
			return fmt.Errorf("%w: post_processor id %d is not in the vocab", ErrInvalid, id)
		}
	}
	return nil
}

// templateID returns the single id of a TemplateProcessing special token.
func templateID(p postJSON, name string) (int32, error) {
	st, ok := p.SpecialTokens[name]
	if !ok {
		return 0, fmt.Errorf("%w: post_processor uses special token %q, which special_tokens lacks", ErrInvalid, name)
	}
	if len(st.IDs) != 1 {
		return 0, fmt.Errorf("%w: post_processor special token %q has %d ids", ErrUnsupported, name, len(st.IDs))
	}
	return st.IDs[0], nil
}

// pairID returns the id of a BertProcessing ["token", id] pair.
func pairID(pair []json.RawMessage, field string) (int32, error) {
	var id int32
	if len(pair) != 2 || json.Unmarshal(pair[1], &id) != nil {
		return 0, fmt.Errorf("%w: post_processor %s is not a [token, id] pair", ErrInvalid, field)
	}
	return id, nil
}

// findPad finds the padding token: padding.pad_token if padding is set and
// names a known token, else [PAD].
func (t *Tokenizer) findPad(raw json.RawMessage) error {
	var p struct {
		PadToken string `json:"pad_token"`
	}
	names := []string{"[PAD]"}
	if !isNull(raw) && json.Unmarshal(raw, &p) == nil && p.PadToken != "" {
		names = append([]string{p.PadToken}, names...)
	}
	for _, name := range names {
		for id, tok := range t.tokens {
			if tok == name {
				t.padID = int32(id)
				return nil
			}
		}
	}
	return fmt.Errorf("%w: no padding token (%s) in the vocab", ErrInvalid, strings.Join(names, " or "))
}

// buildASCII fills the tables of the ASCII fast path.
func (t *Tokenizer) buildASCII() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case c >= 0x80:
			t.ascii[c] = cHigh
			continue
		case t.cleanText && (b == '\t' || b == '\n' || b == '\r' || b == ' '):
			t.ascii[c] = cSpace
		case t.cleanText && t.props[c]&pOther != 0:
			t.ascii[c] = cDrop
		case t.props[c]&pSpace != 0:
			t.ascii[c] = cSpace
		case isASCIIPunct(b):
			t.ascii[c] = cPunct
		default:
			t.ascii[c] = cWord
		}
		t.lowerASCII[c] = b
		if t.lowercase && b >= 'A' && b <= 'Z' {
			t.lowerASCII[c] = b + 'a' - 'A'
		}
		if t.ascii[c] == cPunct {
			s := &state{limit: 1}
			t.emitWord(s, []byte{b}, 1)
			t.punctID[c] = s.out[0]
		}
	}
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}
