package index

import "log/slog"

// options configure a Collection (and, through a Manager, all of its
// collections).
type options struct {
	logger          *slog.Logger
	checkpointBytes int64
	groupBytes      int
	backend         Backend
	compactRatio    float64 // automatic compaction: dead rows / rows at least this (0: off)
	compactBytes    int64   // … and the dead rows' vectors at least this many bytes
}

func defaultOptions() options {
	return options{
		logger:          slog.Default(),
		checkpointBytes: 64 << 20,
		groupBytes:      8 << 20,
		backend:         CPUBackend{},
		compactRatio:    0.5,
		compactBytes:    16 << 20,
	}
}

func buildOptions(opts []Option) options {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Option configures Open, OpenReadOnly, Create and OpenManager.
type Option func(*options)

// WithLogger sets where recovery (a cut WAL tail) and background checkpoint
// failures are logged. Default: slog.Default(); nil keeps the default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithCheckpointBytes sets the WAL segment size at which a background
// checkpoint runs, which bounds replay after a crash. Default: 64 MiB. Zero
// or less turns automatic checkpoints off (Close and Checkpoint still make
// them).
func WithCheckpointBytes(n int64) Option {
	return func(o *options) { o.checkpointBytes = n }
}

// WithGroupCommitBytes sets the most bytes of WAL records one fsync covers
// (a single larger batch still goes alone). Default: 8 MiB.
func WithGroupCommitBytes(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.groupBytes = n
		}
	}
}

// WithBackend sets the Backend searches run on. Default: CPUBackend{}; nil
// keeps the default. The caller keeps ownership: it must outlive every
// Collection (and Manager) opened with it, and the caller closes it after
// closing them. One Backend may serve many collections at once.
func WithBackend(b Backend) Option {
	return func(o *options) {
		if b != nil {
			o.backend = b
		}
	}
}

// WithAutoCompact sets when a collection compacts itself (see Compact) in
// the background: once its dead rows (deleted, or replaced by a later
// upsert of their id) are at least ratio of its rows and their vectors
// take at least minBytes. Searches and writes go on meanwhile, as with
// Compact. Default: ratio 0.5 and 16 MiB, so that a compaction copies at
// most as many rows as it reclaims, and small collections are not rewritten
// for a few dead rows. A ratio of 0 or less turns it off (Compact still
// works); minBytes below 0 counts as 0.
func WithAutoCompact(ratio float64, minBytes int64) Option {
	return func(o *options) {
		o.compactRatio, o.compactBytes = ratio, max(minBytes, 0)
	}
}
