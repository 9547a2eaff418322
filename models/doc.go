// Package models is everything between a token sequence and its vector:
// model folders (tokenizer.json, model.onnx or onnx/model.onnx, and the
// sentence-transformers files that say pooling, normalisation and maximum
// length), ONNX Runtime sessions on the CPU or CUDA (one replica per
// configured device), pooling, static embedding models (a token table read
// from safetensors and mean-pooled on the CPU: sentence-transformers'
// StaticEmbedding and Model2Vec folders, see static.go), and the registry
// of loaded models by id and alias.
//
// A Model does not batch. Its caller (package core, whose batcher packs
// the texts of concurrent requests under a token budget) tokenizes with
// Model.Tokenize, runs packed batches with Model.Forward, and applies each
// request's options (Matryoshka dimensions, normalisation) with
// Model.Finish. Tokenizer (package models/tokenizer) is exact against
// Hugging Face's for BERT WordPiece vocabularies.
//
// Lifetimes: OpenRegistry opens ONNX Runtime (when a model needs it) and
// every model and closes them in reverse order; a Model loaded by hand with
// Load must be closed before its Runtime.
package models
