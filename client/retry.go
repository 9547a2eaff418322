package client

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// RetryAfterKey is the header or trailer in which a server may put how
// long to wait before retrying, in whole milliseconds. A
// google.rpc.RetryInfo detail on the status says the same and is preferred.
const RetryAfterKey = "retry-after-ms"

// RetryPolicy says how unary calls are retried. Zero fields take the
// defaults documented on them.
//
// A call is retried when it fails with UNAVAILABLE, or with
// RESOURCE_EXHAUSTED carrying a retry hint (a RetryInfo detail or a
// retry-after-ms header or trailer; embedd's queue-full and rate-limit
// answers carry one). RESOURCE_EXHAUSTED without a hint is returned at
// once: it is what gRPC answers to a message over the size limit, which no
// retry can fix. Every other code is returned at once.
//
// The wait before attempt n+1 is the server's hint when there is one,
// lengthened by up to Jitter of itself, and otherwise InitialBackoff ×
// Multiplierⁿ⁻¹, capped at MaxBackoff, spread by ±Jitter. No wait runs past
// the call's deadline: when the next wait would, the last error is
// returned at once; likewise when a hint is longer than MaxBackoff.
//
// Retrying UNAVAILABLE may repeat a call the server did run (the answer was
// lost); embedd's calls are idempotent, except that a repeated
// CreateCollection answers ALREADY_EXISTS.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of one call, the first included;
	// default 4; 1 disables retries.
	MaxAttempts int
	// InitialBackoff is the wait before the second attempt; default 100ms.
	InitialBackoff time.Duration
	// MaxBackoff caps every wait; default 5s.
	MaxBackoff time.Duration
	// Multiplier grows the wait from one attempt to the next; default 2.
	Multiplier float64
	// Jitter is the fraction by which waits are spread at random; default
	// 0.2; negative means none.
	Jitter float64
}

// DefaultRetryPolicy returns the policy Dial uses unless told otherwise:
// 4 attempts, waits of 100ms, 200ms and 400ms ±20%, at most 5s each.
func DefaultRetryPolicy() RetryPolicy { return RetryPolicy{}.withDefaults() }

func (p RetryPolicy) withDefaults() RetryPolicy {
	p.MaxAttempts = cmp.Or(p.MaxAttempts, 4)
	p.InitialBackoff = cmp.Or(p.InitialBackoff, 100*time.Millisecond)
	p.MaxBackoff = cmp.Or(p.MaxBackoff, 5*time.Second)
	p.Multiplier = cmp.Or(p.Multiplier, 2)
	if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	p.Jitter = min(max(p.Jitter, 0), 1)
	return p
}

// backoff is the wait before attempt n+1 without a hint, before jitter.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := float64(p.InitialBackoff) * math.Pow(p.Multiplier, float64(n-1))
	return time.Duration(min(d, float64(p.MaxBackoff)))
}

// wait returns how long to wait after attempt n failed with err, and false
// when err is not to be retried.
func (p RetryPolicy) wait(n int, err error, header, trailer metadata.MD) (time.Duration, bool) {
	st := status.Convert(err)
	hint, hinted := retryHint(st, header, trailer)
	switch {
	case st.Code() == codes.ResourceExhausted && hinted:
	case st.Code() == codes.Unavailable:
	default:
		return 0, false
	}
	if hinted {
		if hint > p.MaxBackoff {
			return 0, false
		}
		return hint + time.Duration(rand.Float64()*p.Jitter*float64(hint)), true
	}
	b := float64(p.backoff(n))
	return time.Duration(b * (1 + p.Jitter*(2*rand.Float64()-1))), true
}

// retryHint finds the server's retry hint: a RetryInfo detail, else a
// retry-after-ms trailer, else header.
func retryHint(st *status.Status, header, trailer metadata.MD) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			if err := ri.GetRetryDelay().CheckValid(); err == nil {
				return max(ri.GetRetryDelay().AsDuration(), 0), true
			}
		}
	}
	for _, md := range []metadata.MD{trailer, header} {
		if v := md.Get(RetryAfterKey); len(v) > 0 {
			if ms, err := strconv.ParseInt(v[0], 10, 64); err == nil && ms >= 0 && ms < math.MaxInt64/int64(time.Millisecond) {
				return time.Duration(ms) * time.Millisecond, true
			}
		}
	}
	return 0, false
}

// noRetry is a call option that turns retries off for one call.
type noRetry struct{ grpc.EmptyCallOption }

// unaryInterceptor applies the default timeout and the retry policy.
func unaryInterceptor(p RetryPolicy, timeout time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok && timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		attempts := p.MaxAttempts
		for _, o := range opts {
			if _, ok := o.(noRetry); ok {
				attempts = 1
			}
		}
		if attempts <= 1 {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		var header, trailer metadata.MD
		callOpts := append(opts[:len(opts):len(opts)], grpc.Header(&header), grpc.Trailer(&trailer))
		for n := 1; ; n++ {
			header, trailer = nil, nil
			err := invoker(ctx, method, req, reply, cc, callOpts...)
			if err == nil || n == attempts {
				return err
			}
			wait, ok := p.wait(n, err, header, trailer)
			if !ok {
				return err
			}
			if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
				return err
			}
			if werr := sleep(ctx, wait); werr != nil {
				return status.Errorf(status.FromContextError(werr).Code(), "%v while waiting %v to retry %s after: %v", werr, wait.Round(time.Millisecond), method, err)
			}
		}
	}
}

// sleep waits for d or until ctx ends, and returns ctx.Err() if it did.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errorf wraps a call's error with the package prefix and the RPC's name;
// status.Code and status.FromError still see the status.
func errorf(rpc string, err error) error {
	return fmt.Errorf("embedd/client: %s: %w", rpc, err)
}
