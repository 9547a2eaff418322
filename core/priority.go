package core

import (
	"context"

	"github.com/embedd/embedd/core/batch"
	"github.com/embedd/embedd/models"
)

// EmbedBulk is Embed for bulk work (batch jobs): the same path, limits,
// cache and options, but its texts queue in the batcher's bulk lane, which
// runs only when no interactive text waits, in batches of at most the
// model's bulk_max_batch_size rows, and has its own queue bound, so bulk
// work never makes an interactive call fail as Overloaded. Its own calls
// are Overloaded when the bulk lane is full.
func (c *Core) EmbedBulk(ctx context.Context, model string, texts []string, o models.Options) (Embeddings, error) {
	return c.Embed(batch.WithBulk(ctx), model, texts, o)
}

// ModelID resolves a model name as Embed does (an id, an alias, or "" for
// the default model), for checking a batch's requests before running them;
// an unknown name is NotFound.
func (c *Core) ModelID(name string) (string, error) {
	p, err := c.pipeline(name)
	if err != nil {
		return "", err
	}
	return p.model.Info().ID, nil
}
