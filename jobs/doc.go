// Package jobs runs embedd's batch similarity jobs: a file (or stdin) of
// texts or vectors streamed through the application core (package core),
// read → stage (embed, search) → write, with bounded channels between the
// stages, and a job directory that makes a job resumable after any kill and
// splittable into shards that merge byte-identically.
//
// # Driving it from a server
//
// A server (the OpenAI Batch API, issue 15) runs one job per batch with
// Run: Input names the uploaded file (FormatOpenAI), Stage is
// EmbedStage(core, ...), Output the output and error files (FormatOpenAI
// writes OpenAI's output and error lines), Dir a directory per batch,
// Progress a callback that updates the batch's request_counts, and ctx's
// cancellation is the batch's cancel. Run returns once the output files are
// complete (renamed into place) or with the error that stopped it; calling
// Run again with the same Job after a restart resumes from the parts
// already in Dir, and a changed input or parameter is refused
// (ErrMismatch). A Job is plain data plus a Stage, so a server keeps its
// own queue of them.
//
// # Layout of a job directory
//
//	manifest.json          kind, input identity (path, size, hashes of the first
//	                       and last MiB), parameters, shard, part size
//	part-000000-n1024.bin  the results of records [0, 1024) of the shard:
//	part-000001-n1024.bin  written under a temporary name and renamed when
//	...                    complete; n is the record count
//	done.json              the shard's totals, once every part is there
//
// Parts are numbered within a shard; a part holds PartSize input records
// (the last fewer), good and failed, in input order, so the output is the
// parts concatenated, whatever order they were computed in and whichever
// process computed them: two processes running the same shard (Kubernetes
// may do that) write the same bytes under the same names. A part file
// starts "EJP2" (EJP1, before a result's Base64 flag, is still read).
//
// # Output
//
// One goroutine writes the output in input order. JSON lines (embeddings,
// neighbours, pairs, OpenAI output lines) are made ahead on the workers, and
// from a job directory's parts on every core, so that goroutine only writes
// bytes: for a static model, writing an embedding's numbers costs more than
// computing it. Numbers are package ftoa's (encoding/json's bytes) and an
// OpenAI output line's body is package openai's, what /v1/embeddings
// answers, base64 embeddings included.
//
// # Shards
//
// Shard{Index: i, Count: n} reads the i-th of n newline-aligned byte ranges
// of a line input (a line belongs to the range its first byte is in; line
// numbers count the newlines before the range), or the i-th of n runs of
// row groups of a Parquet input. Merge concatenates the shards' parts in
// shard order into one output, byte-identical to a single process's.
//
// # Pairs
//
// RunPairs finds similar pairs within one set or between two: the vectors
// are mapped from .npy files (other inputs are converted into the job
// directory first, by a Run), and package flat's tiled join scores a block
// of rows against the other set a slab at a time, each tile of a
// self-join's upper triangle once. Threshold pairs, dedup and a two-set
// top k are written block by block into resumable parts
// (pairs/part-BBBBBB-nN.bin, the pairs whose first row is in block B). A
// self-join's top k holds a K-heap per row until the end, since every
// block adds partners to later rows: it checkpoints the heaps and the
// blocks done to pairs/heaps.bin (paced so that saving takes about 5% of
// the join; flat.JoinOptions.CheckpointEvery), and a rerun starts from it,
// scoring again only the blocks that were in flight or finished after the
// last checkpoint (a partner already held is not added twice, so the
// answer is an uninterrupted run's).
//
// A pairs job's shard (PairsJob.Shard) takes every n-th block, dealt
// back and forth (0, 1, …, n-1, n-1, …, 0, …) so that the shards of a
// self-join, whose later blocks pair with fewer rows, get about the same
// work; every shard maps every vector (text inputs are refused: embed them
// once, sharded, then pair the .npy). Merge then writes the parts of all
// shards in block order, or, for a self-join's top k, each row's best of
// the shards' heaps (each pair is scored by one shard only): the output of
// one process, byte for byte.
package jobs
