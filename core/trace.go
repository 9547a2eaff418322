package core

// Spans of the embedding path. With a tracer (WithTracer), each Embed call
// is a span "embed" under the caller's (the surface's RPC span), with
//
//	embed                embedd.model, embedd.texts
//	├─ tokenize          embedd.texts, embedd.tokens
//	├─ cache             embedd.cache.hits, embedd.cache.misses
//	├─ queue_wait        Submit → the batch's start; embedd.batch.id, embedd.batch.texts
//	└─ inference         the batch's model run, pooling included;
//	                     embedd.batch.{id,rows,texts,tokens,padded_tokens},
//	                     embedd.model, embedd.device, embedd.pooling
//
// A batch runs the texts of many requests, so no request's span can be
// open around it: queue_wait and inference are recorded after the fact,
// with the times the batcher reports (batch.SubmitTimed), one pair per
// batch that ran some of the request's texts. Without a tracer nothing is
// recorded and nothing is allocated for it.

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/embedd/embedd/core/batch"
	"github.com/embedd/embedd/models"
)

// Attribute keys of the core's span attributes.
const (
	attrModel       = attribute.Key("embedd.model")
	attrDevice      = attribute.Key("embedd.device")
	attrPooling     = attribute.Key("embedd.pooling")
	attrTexts       = attribute.Key("embedd.texts")
	attrTokens      = attribute.Key("embedd.tokens")
	attrCacheHits   = attribute.Key("embedd.cache.hits")
	attrCacheMisses = attribute.Key("embedd.cache.misses")
	attrBatchID     = attribute.Key("embedd.batch.id")
	attrBatchRows   = attribute.Key("embedd.batch.rows")
	attrBatchTexts  = attribute.Key("embedd.batch.texts") // the request's texts in the batch
	attrBatchTokens = attribute.Key("embedd.batch.tokens")
	attrBatchPadded = attribute.Key("embedd.batch.padded_tokens")
)

// noSpan is the span startSpan returns without a tracer: every method is a
// no-op.
var noSpan = trace.SpanFromContext(context.Background())

// startSpan starts an internal span under ctx's; without a tracer it
// returns ctx and noSpan.
func (c *Core) startSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	if c.tracer == nil {
		return ctx, noSpan
	}
	return c.tracer.Start(ctx, name)
}

// endSpan ends span, marking it failed when err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(otelcodes.Error, AsError(err).Error())
	}
	span.End()
}

// submit sends seqs through the pipeline's batcher. When ctx's span
// records, it asks the batcher for the request's timing and records
// "queue_wait" and "inference" spans after the fact, one pair per batch.
func (c *Core) submit(ctx context.Context, p *pipeline, seqs [][]int32) ([][]float32, error) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return p.batcher.Submit(ctx, seqs)
	}
	vecs, tm, err := p.batcher.SubmitTimed(ctx, seqs)
	c.traceBatches(ctx, p.model.Info(), tm, err)
	return vecs, err
}

// traceBatches records the queue wait and the model run of each batch of
// tm; when no batch ran (queue full, closed, ctx ended), a queue_wait span
// up to now carries the error.
func (c *Core) traceBatches(ctx context.Context, info models.Info, tm batch.Timing, err error) {
	if tm.Submitted.IsZero() {
		return
	}
	if len(tm.Batches) == 0 {
		if err != nil {
			_, q := c.tracer.Start(ctx, "queue_wait", trace.WithTimestamp(tm.Submitted))
			q.SetStatus(otelcodes.Error, err.Error())
			q.End()
		}
		return
	}
	for _, b := range tm.Batches {
		_, q := c.tracer.Start(ctx, "queue_wait", trace.WithTimestamp(tm.Submitted),
			trace.WithAttributes(attrBatchID.Int64(int64(b.ID)), attrBatchTexts.Int(b.Texts)))
		q.End(trace.WithTimestamp(b.Start))
		_, in := c.tracer.Start(ctx, "inference", trace.WithTimestamp(b.Start),
			trace.WithAttributes(
				attrModel.String(info.ID),
				attrDevice.String(info.Device.String()),
				attrPooling.String(string(info.Pooling)),
				attrBatchID.Int64(int64(b.ID)),
				attrBatchRows.Int(b.Rows),
				attrBatchTexts.Int(b.Texts),
				attrBatchTokens.Int(b.Tokens),
				attrBatchPadded.Int(b.PaddedTokens),
			))
		if b.Err != nil {
			in.SetStatus(otelcodes.Error, b.Err.Error())
		}
		in.End(trace.WithTimestamp(b.End))
	}
}
