package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/models"
)

// EmbedOptions is what EmbedStage runs.
type EmbedOptions struct {
	// Model is the model id or alias; "" the default. A record's own
	// Model (an OpenAI request's) wins.
	Model   string
	Options models.Options
	// Chunk is the texts per Core.Embed call; default 256 (with four
	// parts in flight the batcher's queue stays full and within its
	// bound).
	Chunk int
	// CountTokens fills Result.Tokens per record (OpenAI's usage), from
	// the core's per-text counts.
	CountTokens bool
}

// EmbedStage embeds each record's texts through c (the same tokenizer,
// batcher and models as the server). A text the core refuses (over-long,
// rejected by the model) fails its record alone; an overloaded queue is
// waited out.
func EmbedStage(c *core.Core, eo EmbedOptions) Stage {
	if eo.Chunk == 0 {
		eo.Chunk = 256
	}
	eo.Chunk = min(eo.Chunk, c.Config().MaxTextsPerRequest)
	maxBytes := c.Config().MaxTextBytes
	return func(ctx context.Context, recs []Record, out []Result) error {
		// Records with the same model and dimensions go together, in order.
		type group struct {
			model string
			dims  int
		}
		var idx []int
		for i := range recs {
			if out[i].Err != "" {
				continue
			}
			for _, t := range recs[i].Texts {
				if len(t) > maxBytes {
					out[i].Err = fmt.Sprintf("text of %d bytes is over the limit of %d", len(t), maxBytes)
				}
			}
			if out[i].Err == "" {
				idx = append(idx, i)
			}
		}
		for len(idx) > 0 {
			g := group{recs[idx[0]].Model, recs[idx[0]].Dimensions}
			var these, rest []int
			for _, i := range idx {
				if (group{recs[i].Model, recs[i].Dimensions}) == g {
					these = append(these, i)
				} else {
					rest = append(rest, i)
				}
			}
			idx = rest
			model, opts := eo.Model, eo.Options
			if g.model != "" {
				model = g.model
			}
			if g.dims != 0 {
				opts.Dimensions = g.dims
			}
			if err := embedRecords(ctx, c, model, opts, eo, recs, out, these, g != group{}); err != nil {
				return err
			}
		}
		return nil
	}
}

// embedRecords embeds the records idx in chunks of about eo.Chunk texts.
// own says the model or options are the records' own (an OpenAI request's
// body): an unknown model or a bad dimension then fails those records, not
// the job.
func embedRecords(ctx context.Context, c *core.Core, model string, opts models.Options, eo EmbedOptions, recs []Record, out []Result, idx []int, own bool) error {
	for len(idx) > 0 {
		n, texts := 0, 0
		for n < len(idx) && (n == 0 || texts+len(recs[idx[n]].Texts) <= eo.Chunk) {
			texts += len(recs[idx[n]].Texts)
			n++
		}
		if err := embedChunk(ctx, c, model, opts, eo, recs, out, idx[:n], own); err != nil {
			return err
		}
		idx = idx[n:]
	}
	return nil
}

// embedChunk embeds the texts of records idx in one call; a text the core
// refuses fails its record and the call is made again without it.
func embedChunk(ctx context.Context, c *core.Core, model string, opts models.Options, eo EmbedOptions, recs []Record, out []Result, idx []int, own bool) error {
	for len(idx) > 0 {
		var texts []string
		var owner []int // owner[t] is the position in idx of text t's record
		for j, i := range idx {
			for _, t := range recs[i].Texts {
				texts = append(texts, t)
				owner = append(owner, j)
			}
		}
		res, err := c.Embed(ctx, model, texts, opts)
		if err != nil {
			e, again, t, werr := triage(ctx, err, len(owner))
			switch {
			case werr != nil:
				return werr
			case again:
				continue
			case t >= 0:
				j := owner[t]
				out[idx[j]].Err = e.Msg
				idx = append(idx[:j:j], idx[j+1:]...)
				continue
			case own && (e.Kind == core.NotFound || e.Kind == core.InvalidArgument && e.Field == "dimensions"):
				for _, i := range idx {
					out[i].Err = e.Error()
				}
				return nil
			}
			return fmt.Errorf("embedd/jobs: embedding line %d: %w", recs[idx[0]].Line, err)
		}
		t := 0
		for _, i := range idx {
			n := len(recs[i].Texts)
			out[i].Vectors = res.Vectors[t : t+n : t+n]
			out[i].Model = res.Model
			if eo.CountTokens {
				for _, k := range res.TextTokens[t : t+n] {
					out[i].Tokens += k
				}
			}
			t += n
		}
		return nil
	}
	return nil
}

// triage reads a core error from a call over n items: again after an
// overload has been waited out (werr if ctx ended first), or item, the
// index of the item an invalid argument names (-1 if none).
func triage(ctx context.Context, err error, n int) (e *core.Error, again bool, item int, werr error) {
	e = core.AsError(err)
	if e.Kind == core.Overloaded {
		return e, true, -1, sleep(ctx, e.RetryAfter)
	}
	if e.Kind == core.InvalidArgument && scanIndex(e.Field, &item) && item < n {
		return e, false, item, nil
	}
	return e, false, -1, nil
}

// scanIndex reads i from a core error field "texts[i]" or "queries[i]".
func scanIndex(field string, i *int) bool {
	if _, err := fmt.Sscanf(field, "texts[%d]", i); err == nil {
		return true
	}
	_, err := fmt.Sscanf(field, "queries[%d]", i)
	return err == nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// SearchOptions is what SearchStage runs.
type SearchOptions struct {
	Collection string
	K          int
	// Filter keeps rows whose metadata has these top-level values.
	Filter map[string]string
	// Embed embeds text queries for a collection without a model.
	Embed core.EmbedSpec
}

// SearchStage answers each record (a text, embedded with the collection's
// model, or a vector) with its top K in a collection, all of a part's
// queries in one Core.Search: one pass over the matrix, on the GPU backend
// when the core runs one. A query the core refuses fails its record alone.
func SearchStage(c *core.Core, so SearchOptions) Stage {
	chunk := c.Config().MaxTextsPerRequest
	return func(ctx context.Context, recs []Record, out []Result) error {
		var idx []int
		for i := range recs {
			if out[i].Err == "" {
				if len(recs[i].Texts) > 1 {
					out[i].Err = "a search query is one text"
					continue
				}
				idx = append(idx, i)
			}
		}
		for len(idx) > 0 {
			n := min(len(idx), chunk)
			if err := searchChunk(ctx, c, so, recs, out, idx[:n]); err != nil {
				return err
			}
			idx = idx[n:]
		}
		return nil
	}
}

func searchChunk(ctx context.Context, c *core.Core, so SearchOptions, recs []Record, out []Result, idx []int) error {
	for len(idx) > 0 {
		qs := make([]core.Query, len(idx))
		for j, i := range idx {
			if len(recs[i].Vector) > 0 {
				qs[j].Vector = recs[i].Vector
			} else {
				qs[j].Text = recs[i].Texts[0]
			}
		}
		res, err := c.Search(ctx, core.SearchRequest{Collection: so.Collection, Queries: qs, K: so.K, Filter: so.Filter, Embed: so.Embed})
		if err != nil {
			e, again, t, werr := triage(ctx, err, len(idx))
			switch {
			case werr != nil:
				return werr
			case again:
				continue
			case t >= 0:
				out[idx[t]].Err = e.Msg
				idx = append(idx[:t:t], idx[t+1:]...)
				continue
			case e.Kind == core.InvalidArgument && len(idx) > 1:
				// The index names no query: ask again one query at a time,
				// so only the bad ones fail.
				for _, i := range idx {
					if err := searchChunk(ctx, c, so, recs, out, []int{i}); err != nil {
						return err
					}
				}
				return nil
			case e.Kind == core.InvalidArgument:
				out[idx[0]].Err = e.Error()
				return nil
			}
			return fmt.Errorf("embedd/jobs: searching line %d: %w", recs[idx[0]].Line, err)
		}
		for j, i := range idx {
			nb := make([]Neighbor, len(res[j]))
			for h, r := range res[j] {
				nb[h] = Neighbor{ID: r.ID, Score: r.Score}
			}
			out[i].Neighbors = nb
		}
		return nil
	}
	return nil
}
