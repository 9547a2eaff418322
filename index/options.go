package index

import "log/slog"

// options configure a Collection (and, through a Manager, all of its
// collections).
type options struct {
	logger          *slog.Logger
	checkpointBytes int64
	groupBytes      int
	backend         Backend
}

func defaultOptions() options {
	return options{
		logger:          slog.Default(),
		checkpointBytes: 64 << 20,
		groupBytes:      8 << 20,
		backend:         CPUBackend{},
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
