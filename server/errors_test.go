package server

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/core"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// TestErrorTablesCoverEveryKind: each of the core's error kinds has a row
// in both tables (a missing row would read as OK / status 0).
func TestErrorTablesCoverEveryKind(t *testing.T) {
	for k := core.Internal; k <= core.Canceled; k++ {
		if k >= core.Kind(len(grpcCodes)) || (grpcCodes[k] == codes.OK) {
			t.Errorf("kind %v has no gRPC code", k)
		}
		if k >= core.Kind(len(httpCodes)) || httpCodes[k].code == 0 || httpCodes[k].typ == "" {
			t.Errorf("kind %v has no HTTP status", k)
		}
	}
	if grpcError(nil) != nil {
		t.Error("grpcError(nil) is not nil")
	}
}

// TestRetryHintIsTheSameOverGRPCAndHTTP: an Overloaded refusal (here the
// rate limit) carries its hint as gRPC's RetryInfo and as HTTP's
// Retry-After (whole seconds, rounded up) and retry-after-ms.
func TestRetryHintIsTheSameOverGRPCAndHTTP(t *testing.T) {
	cfg := testConfig()
	cfg.RateLimit, cfg.RateBurst = 0.25, 1 // one call, then a 4s wait
	ts := startServer(t, cfg)
	req := &embeddv1.EmbedRequest{Texts: []string{"hint"}}
	if _, err := ts.embed.Embed(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	_, err := ts.embed.Embed(context.Background(), req)
	st := status.Convert(err)
	var grpcHint time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			grpcHint = ri.RetryDelay.AsDuration()
		}
	}
	if st.Code() != codes.ResourceExhausted || grpcHint < 3*time.Second || grpcHint > 4*time.Second {
		t.Fatalf("gRPC refusal %v with hint %v; want RESOURCE_EXHAUSTED with a RetryInfo of 3-4s", err, grpcHint)
	}
	// Without API keys both calls come from one client, 127.0.0.1: the
	// same bucket, so HTTP is refused with what remains of the same wait.
	resp, body := post(t, ts.httpBase+"/v1/embeddings", "", `{"input": "hint"}`)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("HTTP after the limit: %d %s", resp.StatusCode, body)
	}
	ms, err := strconv.Atoi(resp.Header.Get("Retry-After-Ms"))
	if err != nil {
		t.Fatalf("retry-after-ms %q: %v", resp.Header.Get("Retry-After-Ms"), err)
	}
	hint := time.Duration(ms) * time.Millisecond
	if d := hint - grpcHint; d > 0 || d < -time.Second {
		t.Errorf("HTTP hint %v vs gRPC's %v a moment earlier: want the same bucket's wait", hint, grpcHint)
	}
	if got, want := resp.Header.Get("Retry-After"), strconv.Itoa(int(math.Ceil(hint.Seconds()))); got != want {
		t.Errorf("Retry-After %q, want %q (retry-after-ms %d rounded up to seconds)", got, want, ms)
	}
	var e struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Type != "rate_limit_error" {
		t.Errorf("HTTP body %s: want OpenAI's rate_limit_error", body)
	}
}
