// Package core is embedd's application core: the one place between the
// surfaces (gRPC and HTTP in package server, the command-line tools in
// cmd/embedd) and the engines (models: text → vector; index: vectors →
// neighbours; gpu). Every surface calls it; it knows nothing of transports.
//
// It owns, once:
//   - the per-model pipelines: the request limits, the tokenizer (run on the
//     caller's goroutine: ~10 µs for 128 tokens, and the batch former needs
//     token counts), the embedding cache (core/cache), the one dynamic
//     batcher (core/batch: token budget, length buckets, max wait, bounded
//     queue), and the request's options (dimensions, normalisation);
//   - text → vector for collections (a collection's own model, or the
//     request's), and the collections' lifetime;
//   - the choice and lifetime of the search backend (index.Backend: the CPU
//     kernel, or index/gpusearch on CUDA);
//   - the defaults of all of the above, in one table (config.go);
//   - domain errors (Error, with a Kind each surface maps in one table: an
//     invalid argument naming its field, not found, overloaded with a
//     retry-after, unavailable while loading or draining).
//
// Data flow of one embedding: Core.Embed → limits → Model.Tokenize → cache
// → Batcher.Submit (queue; full → Overloaded with RetryAfter) → batch
// former → Model.Forward on a worker (ONNX Runtime session, pooling) →
// Model.Finish per request (dimensions, normalisation) → vectors in the
// request's order.
package core
