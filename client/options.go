package client

import (
	"crypto/tls"
	"time"

	"google.golang.org/grpc"
)

// options are Dial's settings; each Option documents its default.
type options struct {
	tls          *tls.Config // nil: plaintext
	caFile       string      // read by Dial into tls.RootCAs
	apiKey       string
	timeout      time.Duration
	retry        RetryPolicy
	maxMsgBytes  int
	streamWindow int
	block        bool
	dialOpts     []grpc.DialOption
}

func defaultOptions() options {
	return options{
		retry:        DefaultRetryPolicy(),
		maxMsgBytes:  64 << 20,
		streamWindow: 4,
	}
}

// Option changes a setting of Dial.
type Option func(*options)

// WithInsecure connects in plaintext. This is the default; it undoes an
// earlier TLS option. An API key is then sent in the clear.
func WithInsecure() Option {
	return func(o *options) { o.tls, o.caFile = nil, "" }
}

// WithTLSCAFile connects over TLS and trusts only the PEM certificates in
// the file at path to sign the server's certificate. Default: plaintext.
func WithTLSCAFile(path string) Option {
	return func(o *options) { o.tls, o.caFile = &tls.Config{MinVersion: tls.VersionTLS12}, path }
}

// WithTLSConfig connects over TLS configured by cfg (cloned; nil verifies
// the server against the system's roots). Default: plaintext.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.tls, o.caFile = cfg.Clone(), ""
	}
}

// WithAPIKey sends "authorization: Bearer key" with every call, streams
// and health checks included. Default: no key.
func WithAPIKey(key string) Option {
	return func(o *options) { o.apiKey = key }
}

// WithTimeout bounds every unary call whose context has no deadline to d,
// retries and the waits between them included; streams are not bounded.
// Default 0: calls run until their context ends.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithRetryPolicy sets how unary calls are retried; default
// DefaultRetryPolicy(). Zero fields of p take their defaults.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(o *options) { o.retry = p.withDefaults() }
}

// WithMaxMessageBytes bounds one response message; default 64 MiB (a
// search with vectors, or a big Embed, can pass gRPC's usual 4 MiB).
func WithMaxMessageBytes(n int) Option {
	return func(o *options) { o.maxMsgBytes = n }
}

// WithStreamWindow bounds the chunks EmbedStream has sent without an answer
// yet; default 4. n < 1 means 1.
func WithStreamWindow(n int) Option {
	return func(o *options) { o.streamWindow = max(n, 1) }
}

// WithBlock makes Dial wait until the connection is ready, or until its
// context ends, and report why not. Default: Dial returns at once and
// gRPC connects in the background (the first call waits for it).
func WithBlock() Option {
	return func(o *options) { o.block = true }
}

// WithDialOptions adds gRPC dial options after the client's own, for what
// the options above do not cover (interceptors, keepalive, a custom dialer).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}
