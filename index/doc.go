// Package index keeps collections of vectors in memory-mapped files, with
// durable writes and consistent snapshots for search.
//
// A collection has a fixed dimension and metric (cosine, dot, l2), set at
// creation. Rows are row-major little-endian float32 in a file mapped with
// mmap, so opening a collection copies nothing into the Go heap: pages fault
// in when a search touches them. Writes (Upsert, Delete) are acknowledged
// only once their write-ahead-log record is fsynced; concurrent writers share
// one fsync (group commit). A checkpoint syncs the data files and records the
// WAL position they include, which bounds replay after a crash.
//
// # Directory of one collection
//
//	manifest.json              dim, metric, format (written once, never changed)
//	LOCK                       flock'd by the one writing process
//	CHECKPOINT                 the durable state: generation, seq, lengths, tombstones
//	vectors-<gen>.f32          the matrix, one row per upsert ever made in <gen>
//	norms-<gen>.f32            squared row norms (l2 collections only)
//	ids-<gen>.dat              row → id, one record per row
//	meta-<gen>.dat             per-row metadata, only for rows that have it
//	wal-<startseq>.log         write-ahead-log segments, oldest first
//
// <gen> and <startseq> are 16 lower-case hex digits. A generation is the set
// of data files one compaction writes; rows within a generation are only ever
// appended (an upsert of an existing id tombstones its old row and appends a
// new one), so bytes a snapshot can see never change under it. No data file
// ever shrinks: after a crash the bytes past the checkpointed lengths are
// overwritten by WAL replay.
//
// # Data files (vectors, norms, ids, meta)
//
// Every data file starts with the same 64-byte header; integers are
// little-endian:
//
//	offset  size  field
//	     0     8  magic: "EMBDVEC1" vectors, "EMBDNRM1" norms, "EMBDIDS1" ids, "EMBDMET1" meta
//	     8     4  format version (1)
//	    12     4  dim (vectors; 1 in norms, 0 in ids and meta)
//	    16     8  generation
//	    24    36  zero
//	    60     4  CRC-32C (Castagnoli) of bytes [0, 60)
//
// After the header:
//
//	vectors  row r at 64 + r*dim*4: dim float32 (unit length in cosine collections)
//	norms    row r at 64 + r*4: one float32, the squared L2 norm of row r
//	ids      per row, in row order:         | len u16 | id [len]byte |   (UTF-8, 1..256 bytes)
//	meta     per row with metadata, in order: | row u32 | kind u8 | len u32 | data [len]byte |
//	         kind 1: opaque bytes; kind 2: a JSON object, compacted
//
// Files are grown in steps (doubling, at most 1 GiB at a time) with fallocate,
// so their size is a capacity; the logical lengths live in CHECKPOINT and in
// memory.
//
// # CHECKPOINT
//
//	offset  size     field
//	     0     8     magic "EMBDCKP1"
//	     8     4     format version (2; version 1, still read, has no sums)
//	    12     4     flags (0)
//	    16     8     generation
//	    24     8     seq: the last WAL record the data files include
//	    32     8     rows
//	    40     8     idsBytes: logical length of the ids file, header included
//	    48     8     metaBytes: logical length of the meta file, header included
//	    56     8     deleted: rows deleted as of seq
//	    64     8     words = (rows+63)/64
//	    72     8*words  bitmap: bit r%64 of word r/64 set when row r is deleted
//	  72+8w   16     sums: CRC-32C of each data file's bytes [0, logical length),
//	                 header included: vectors (64+rows*dim*4), norms (64+rows*4;
//	                 0 when there is no norms file), ids (idsBytes), meta (metaBytes)
//	  88+8w    4     CRC-32C of everything before it
//
// The data files are only appended to, so each checkpoint extends the
// sums of the one before with the bytes written since. Open checks the ids,
// meta and norms files against them (it reads those files anyway); the
// matrix, which Open maps without reading, is checked by Verify (and
// embedd verify).
// The file is replaced atomically (write a temporary file, fsync, rename,
// fsync the directory).
//
// # Write-ahead log
//
// A segment is a 24-byte header and then records, back to back:
//
//	segment header  | magic "EMBDWAL1" [8] | startSeq u64 | version u32 | CRC-32C of [0,20) u32 |
//
//	record          +------------+---------+------------------------------+
//	                | length u32 | crc u32 | payload [length]byte         |
//	                +------------+---------+------------------------------+
//	                crc is CRC-32C of payload; length is 12 B..64 MiB, so a
//	                zeroed or preallocated tail is never a record
//
//	payload         | seq u64 | nops u32 | op | op | ... |   (one batch: applied all or nothing)
//	op upsert       | 1 u8 | idLen u16 | id | metaKind u8 (0 none) | metaLen u32 | meta | vector dim×f32 |
//	op delete       | 2 u8 | idLen u16 | id |
//
// seq numbers the batches 1, 2, 3, … with no gaps across segments; a
// segment's first record has seq startSeq. Vectors are stored already
// normalised (cosine), so replay is exact. Recovery replays every record with
// seq greater than the checkpoint's. A record that is short or fails its
// checksum, with no intact record after it (in its segment or a later one)
// that the checkpoint does not cover, is a torn tail: the end of a write
// that was never acknowledged. It and anything after it is cut, with a log
// line. Damage followed by an intact record is not a torn write and cutting
// there would drop acknowledged writes, so Open fails with an error wrapping
// ErrCorrupt that names the segment and offset, and changes nothing; Repair
// (embedd repair) replays every intact record, skipping the damaged bytes,
// and keeps a copy of the damaged segment. Space for records is reserved
// (fallocate, keeping the size) before a write is applied, so a full disk
// refuses the write (ErrNoSpace) instead of breaking the log.
//
// # Concurrency
//
// Readers take a Snapshot: an immutable row count and sequence number over
// append-only row data, plus a per-row "deleted at seq" array read with atomic
// loads (a row is deleted in a snapshot when its delete seq is non-zero and at
// most the snapshot's seq). Writers append rows past every published count and
// publish a new state with one atomic pointer store after the WAL fsync, so a
// reader never sees a half-written row or half a batch.
//
// Growing a file never moves what a snapshot holds: each file is mapped once
// with a large MAP_SHARED|MAP_NORESERVE reservation (at least 1 GiB for
// vectors) and grown underneath it with fallocate; growing past a reservation
// maps the file again, larger, and keeps the old mapping until the generation
// is released. Compaction writes a new generation while searches go on;
// snapshots of the old one keep it mapped until they are closed. It runs by
// itself in the background once enough rows are dead (WithAutoCompact), and
// on demand (Compact).
//
// # Read-only openers
//
// OpenReadOnly (another process, a batch job) maps the checkpointed files with
// MAP_PRIVATE and replays the WAL into those private pages, so it shares the
// page cache with the writer, never writes a file, and sees the state as of
// some moment while it opened. It does not follow later writes.
package index

// on-disk format; do not change
const (
	formatVersion = 1

	checkpointVersion1 = 1 // CHECKPOINT without the data files' checksums (still read)
	checkpointVersion  = 2 // CHECKPOINT with them, as written now

	manifestName   = "manifest.json"
	checkpointName = "CHECKPOINT"
	lockName       = "LOCK"

	vectorsMagic    = "EMBDVEC1"
	normsMagic      = "EMBDNRM1"
	idsMagic        = "EMBDIDS1"
	metaMagic       = "EMBDMET1"
	checkpointMagic = "EMBDCKP1"
	walMagic        = "EMBDWAL1"

	fileHeaderSize      = 64 // data files: magic, version, dim, generation, zero, crc
	checkpointFixedSize = 72 // CHECKPOINT before the bitmap
	walHeaderSize       = 24 // segment header
	walRecordHeaderSize = 8  // length u32, crc u32
	walBatchHeaderSize  = 12 // seq u64, nops u32
	metaRecordHeader    = 9  // row u32, kind u8, len u32
	idRecordHeader      = 2  // len u16

	walOpUpsert = 1
	walOpDelete = 2

	metaKindNone  = 0
	metaKindBytes = 1
	metaKindJSON  = 2

	maxWALRecord = 64 << 20 // largest record payload, so the largest batch
)
