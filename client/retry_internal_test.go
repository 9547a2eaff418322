package client

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestBackoffSchedule(t *testing.T) {
	p := DefaultRetryPolicy()
	unavailable := status.Error(codes.Unavailable, "down")
	for n, base := range []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000} {
		base *= time.Millisecond
		if n >= 6 {
			base = 5 * time.Second // capped
		}
		lo, hi := base, base
		for range 200 {
			w, ok := p.wait(n+1, unavailable, nil, nil)
			if !ok {
				t.Fatalf("attempt %d: UNAVAILABLE not retried", n+1)
			}
			lo, hi = min(lo, w), max(hi, w)
		}
		// ±20% jitter, and it does spread.
		if lo < base*8/10 || hi > base*12/10 || hi-lo < base/10 {
			t.Errorf("wait after attempt %d in [%v, %v]; want a spread within %v ± 20%%", n+1, lo, hi, base)
		}
	}
	noJitter := RetryPolicy{Jitter: -1}.withDefaults()
	if w, _ := noJitter.wait(3, unavailable, nil, nil); w != 400*time.Millisecond {
		t.Errorf("without jitter, the third wait is %v, want 400ms", w)
	}
}

func TestRetryHints(t *testing.T) {
	p := DefaultRetryPolicy()
	withInfo := func(c codes.Code, d time.Duration) error {
		st, err := status.New(c, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	exhausted := status.Error(codes.ResourceExhausted, "busy")
	for _, tc := range []struct {
		name            string
		err             error
		header, trailer metadata.MD
		ok              bool
		min, max        time.Duration
	}{
		{"RetryInfo", withInfo(codes.ResourceExhausted, 300*time.Millisecond), nil, nil, true, 300 * time.Millisecond, 360 * time.Millisecond},
		{"RetryInfo beats trailer", withInfo(codes.ResourceExhausted, 300*time.Millisecond), nil, metadata.Pairs(RetryAfterKey, "50"), true, 300 * time.Millisecond, 360 * time.Millisecond},
		{"trailer", exhausted, nil, metadata.Pairs(RetryAfterKey, "50"), true, 50 * time.Millisecond, 60 * time.Millisecond},
		{"header", exhausted, metadata.Pairs(RetryAfterKey, "70"), nil, true, 70 * time.Millisecond, 84 * time.Millisecond},
		{"trailer beats header", exhausted, metadata.Pairs(RetryAfterKey, "70"), metadata.Pairs(RetryAfterKey, "50"), true, 50 * time.Millisecond, 60 * time.Millisecond},
		{"hint on UNAVAILABLE", withInfo(codes.Unavailable, time.Second), nil, nil, true, time.Second, 1200 * time.Millisecond},
		{"bad trailer is no hint", exhausted, nil, metadata.Pairs(RetryAfterKey, "soon"), false, 0, 0},
		{"negative trailer is no hint", exhausted, nil, metadata.Pairs(RetryAfterKey, "-5"), false, 0, 0},
		{"no hint", exhausted, nil, nil, false, 0, 0},
		{"hint over MaxBackoff", withInfo(codes.ResourceExhausted, 6*time.Second), nil, nil, false, 0, 0},
		{"not retryable", withInfo(codes.InvalidArgument, time.Millisecond), nil, nil, false, 0, 0},
		{"not a status", errors.New("plain"), nil, nil, false, 0, 0},
	} {
		for range 50 {
			w, ok := p.wait(1, tc.err, tc.header, tc.trailer)
			if ok != tc.ok || ok && (w < tc.min || w > tc.max) {
				t.Fatalf("%s: wait = %v, %v; want %v in [%v, %v]", tc.name, w, ok, tc.ok, tc.min, tc.max)
			}
		}
	}
}
