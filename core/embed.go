package core

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/embedd/embedd/core/batch"
	"github.com/embedd/embedd/core/cache"
	"github.com/embedd/embedd/models"
)

// Embeddings is the answer to one Embed call.
type Embeddings struct {
	// Model is the id of the model that ran (the request may have named
	// an alias, or none).
	Model string
	// Vectors are in the request's order, each of the requested dimension.
	Vectors [][]float32
	// Tokens counts the tokens fed to the model, special tokens included.
	Tokens int
	// TextTokens are each text's share of Tokens, in the request's order.
	TextTokens []int
}

// Embed is the one embedding path behind every surface: it checks texts
// against the limits, tokenizes them (on the caller's goroutine: cheap, and
// the batcher needs token counts), serves what it can from the cache,
// sends the rest through the model's batcher, and applies o. model is an
// id, an alias, or "" for the default model.
func (c *Core) Embed(ctx context.Context, model string, texts []string, o models.Options) (_ Embeddings, err error) {
	ctx, span := c.startSpan(ctx, "embed")
	defer func() { endSpan(span, err) }()
	p, err := c.pipeline(model)
	if err != nil {
		return Embeddings{}, err
	}
	id := p.model.Info().ID
	if span.IsRecording() {
		span.SetAttributes(attrModel.String(id), attrTexts.Int(len(texts)))
	}
	if err := c.checkTexts("texts", texts); err != nil {
		return Embeddings{}, err
	}
	if err := p.model.CheckOptions(o); err != nil {
		return Embeddings{}, &Error{Kind: InvalidArgument, Field: "dimensions", Msg: err.Error(), Err: err}
	}
	arena, ends, err := c.tokenize(ctx, p, texts, o.Truncate)
	if err != nil {
		return Embeddings{}, err
	}
	out := make([][]float32, len(texts))
	misses := c.cached(ctx, id, texts, out)
	if len(misses) > 0 {
		seqs := make([][]int32, len(misses))
		for j, i := range misses {
			start := 0
			if i > 0 {
				start = ends[i-1]
			}
			seqs[j] = arena[start:ends[i]:ends[i]]
		}
		vecs, err := c.submit(ctx, p, seqs)
		if err != nil {
			return Embeddings{}, batchError(p, err)
		}
		// Bulk work (a batch job's millions of distinct texts) would only
		// evict what interactive callers repeat: it reads the cache, never
		// fills it.
		fill := !batch.IsBulk(ctx) && c.cache.Enabled()
		for j, i := range misses {
			if fill {
				c.cache.Put(cache.Key(id, 0, 0, texts[i]), vecs[j])
			}
			out[i] = vecs[j]
		}
	}
	for i, v := range out {
		out[i] = p.model.Finish(v, o)
	}
	per := make([]int, len(ends))
	for i, end := range ends {
		per[i] = end
		if i > 0 {
			per[i] -= ends[i-1]
		}
	}
	return Embeddings{Model: id, Vectors: out, Tokens: len(arena), TextTokens: per}, nil
}

// Tokenize returns the ids of each text under model's tokenizer, [CLS]
// and [SEP] included, cut to the model's maximum length when truncate is
// set.
func (c *Core) Tokenize(model string, texts []string, truncate bool) ([][]int32, error) {
	p, err := c.pipeline(model)
	if err != nil {
		return nil, err
	}
	if err := c.checkTexts("texts", texts); err != nil {
		return nil, err
	}
	maxLen := 0
	if truncate {
		maxLen = p.model.Info().MaxLength
	}
	out := make([][]int32, len(texts))
	for i, t := range texts {
		if !utf8.ValidString(t) {
			return nil, Errorf(InvalidArgument, fmt.Sprintf("texts[%d]", i), "is not valid UTF-8")
		}
		out[i], _ = p.model.Encode(nil, t, maxLen)
	}
	return out, nil
}

// tokenize tokenizes texts into one arena, ends[i] being where text i's ids
// end (the "tokenize" span).
func (c *Core) tokenize(ctx context.Context, p *pipeline, texts []string, t models.Truncation) (arena []int32, ends []int, err error) {
	_, span := c.startSpan(ctx, "tokenize")
	defer func() { endSpan(span, err) }()
	ends = make([]int, len(texts))
	for i, text := range texts {
		if arena, err = p.model.Tokenize(arena, i, text, t); err != nil {
			return nil, nil, AsError(err)
		}
		ends[i] = len(arena)
	}
	if span.IsRecording() {
		span.SetAttributes(attrTexts.Int(len(texts)), attrTokens.Int(len(arena)))
	}
	return arena, ends, nil
}

// cached fills out[i] with the cached vector of texts[i] where there is
// one, and returns the indexes of the others (the "cache" span).
func (c *Core) cached(ctx context.Context, model string, texts []string, out [][]float32) (misses []int) {
	_, span := c.startSpan(ctx, "cache")
	defer span.End()
	if !c.cache.Enabled() {
		misses = make([]int, len(texts))
		for i := range misses {
			misses[i] = i
		}
		return misses
	}
	for i, t := range texts {
		if v, ok := c.cache.Get(cache.Key(model, 0, 0, t)); ok {
			out[i] = v
		} else {
			misses = append(misses, i)
		}
	}
	if span.IsRecording() {
		span.SetAttributes(attrCacheHits.Int(len(texts)-len(misses)), attrCacheMisses.Int(len(misses)))
	}
	return misses
}

// checkTexts applies the per-request limits to the list field.
func (c *Core) checkTexts(field string, texts []string) error {
	if len(texts) == 0 {
		return Errorf(InvalidArgument, field, "the list is empty; send at least one text")
	}
	if len(texts) > c.cfg.MaxTextsPerRequest {
		return Errorf(InvalidArgument, field, "%d texts is over the limit of %d per request; split the request or use EmbedStream", len(texts), c.cfg.MaxTextsPerRequest)
	}
	for i, t := range texts {
		if len(t) > c.cfg.MaxTextBytes {
			return Errorf(InvalidArgument, fmt.Sprintf("%s[%d]", field, i), "%d bytes is over the limit of %d bytes per text", len(t), c.cfg.MaxTextBytes)
		}
	}
	return nil
}

// batchError turns the batcher's errors into the core's; a full queue
// carries a retry hint: the time to work through the queue at about 1ms a
// text, at least 50ms.
func batchError(p *pipeline, err error) error {
	if errors.Is(err, batch.ErrQueueFull) {
		wait := max(50*time.Millisecond, time.Duration(p.batcher.QueueDepth())*time.Millisecond)
		return &Error{Kind: Overloaded, RetryAfter: wait, Err: err,
			Msg: fmt.Sprintf("model %s is overloaded (%v); retry after %v", p.model.Info().ID, err, wait)}
	}
	return AsError(err)
}
