package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/core"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// vectorCollection creates collection name of dimension dim with n rows
// r0, r1, ... (upserted in batches that fit small message limits).
func vectorCollection(t *testing.T, ix embeddv1.IndexServiceClient, name string, dim, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: name, Dimension: uint32(dim), Metric: embeddv1.Metric_METRIC_DOT}); err != nil {
		t.Fatal(err)
	}
	for start := 0; start < n; start += 20 {
		var recs []*embeddv1.Record
		for i := start; i < min(n, start+20); i++ {
			v := make([]float32, dim)
			v[i%dim] = float32(i + 1)
			recs = append(recs, &embeddv1.Record{Id: fmt.Sprintf("r%d", i), Vector: v})
		}
		if _, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: name, Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
}

func queries(n, dim int) []*embeddv1.Query {
	qs := make([]*embeddv1.Query, n)
	for i := range qs {
		v := make([]float32, dim)
		v[i%dim] = 1
		qs[i] = vecQuery(v)
	}
	return qs
}

// Issue 11.1: queries × k is bounded by max_search_hits, and an answer that
// could not fit in max_message_bytes is refused, both before any work.
func TestSearchBoundedBeforeWork(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSearchHits = 100
	cfg.MaxMessageBytes = 4096
	ts := startServer(t, cfg)
	ix := embeddv1.NewIndexServiceClient(ts.conn)
	vectorCollection(t, ix, "v", 16, 100)
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		req     *embeddv1.SearchRequest
		code    codes.Code
		message string
	}{
		{"over max_search_hits", &embeddv1.SearchRequest{Collection: "v", Queries: queries(11, 16), K: 10}, codes.InvalidArgument,
			"k: 11 queries × k 10 = 110 hits is over max_search_hits 100"},
		{"at max_search_hits", &embeddv1.SearchRequest{Collection: "v", Queries: queries(10, 16), K: 10}, codes.OK, ""},
		{"answer over max_message_bytes", &embeddv1.SearchRequest{Collection: "v", Queries: queries(3, 16), K: 30, IncludeVectors: true}, codes.InvalidArgument,
			"the answer to 3 queries × 30 hits takes at least 6480 bytes, over max_message_bytes 4096"},
		{"the same without vectors fits", &embeddv1.SearchRequest{Collection: "v", Queries: queries(3, 16), K: 30}, codes.OK, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ix.Search(ctx, c.req)
			st := status.Convert(err)
			if st.Code() != c.code || !strings.Contains(st.Message(), c.message) {
				t.Fatalf("got %v %q, want %v with %q", st.Code(), st.Message(), c.code, c.message)
			}
		})
	}
}

// Issue 11.3: HTTP metrics are labelled by route pattern; every path no
// route matches (401s and 307s included) shares one label.
func TestHTTPMetricsLabelledByRoute(t *testing.T) {
	cfg := testConfig()
	cfg.APIKeys = []string{testKey}
	ts := startServer(t, cfg)
	for i := range 50 {
		get(t, fmt.Sprintf("%s/made/up/%d", ts.httpBase, i), "")         // 401
		get(t, fmt.Sprintf("%s/made/up/%d", ts.httpBase, i), testKey)    // 404
		get(t, fmt.Sprintf("%s/v1/models/m%d", ts.httpBase, i), testKey) // a route, unknown model
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, ts.httpBase+"//x", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	if resp, err := noRedirect.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	code, body := get(t, ts.httpBase+"/metrics", testKey)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	labels := map[string]bool{}
	for _, m := range regexp.MustCompile(`embedd_requests_total\{code="\d+",method="(HTTP [^"]*)"\}`).FindAllStringSubmatch(body, -1) {
		labels[m[1]] = true
	}
	want := map[string]bool{"HTTP unmatched": true, "HTTP /v1/models/{id}": true}
	for l := range labels {
		if !want[l] {
			t.Errorf("HTTP metric label %q: want only route patterns and %q", l, unmatchedRoute)
		}
	}
	for l := range want {
		if !labels[l] {
			t.Errorf("no metric labelled %q in\n%v", l, labels)
		}
	}
}

// Issue 11.4: without configured keys, a bearer token is no identity: a
// fresh token per call is limited as the same peer.
func TestRateLimitIgnoresUnconfiguredTokens(t *testing.T) {
	cfg := testConfig()
	cfg.RateLimit, cfg.RateBurst = 0.001, 1 // one call, then a refill in 1000s
	ts := startServer(t, cfg)
	req := &embeddv1.EmbedRequest{Texts: []string{"rate"}}
	if _, err := ts.embed.Embed(withKey(context.Background(), "fresh-token-1"), req); err != nil {
		t.Fatal(err)
	}
	_, err := ts.embed.Embed(withKey(context.Background(), "fresh-token-2"), req)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("gRPC: a second call with a fresh token got %v, want RESOURCE_EXHAUSTED", err)
	}
	// HTTP shares the peer's bucket.
	resp, body := post(t, ts.httpBase+"/v1/embeddings", "fresh-token-3", `{"input": "rate"}`)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("HTTP with a fresh token: %d %s, want 429", resp.StatusCode, body)
	}
}

// Issue 11.7: HTTP bodies are read as strictly as gRPC's: null inputs,
// invalid UTF-8, trailing data and other content types are refused.
func TestHTTPBodyStrict(t *testing.T) {
	ts := startServer(t, testConfig())
	url := ts.httpBase + "/v1/embeddings"
	for _, c := range []struct {
		name, contentType, body string
		code                    int
		want                    string
	}{
		{"null input", "application/json", `{"input": null}`, 400, "input is null"},
		{"null element", "application/json", `{"input": ["a", null]}`, 400, "input[1] is null"},
		{"invalid UTF-8", "application/json", "{\"input\": \"ab\xffcd\"}", 400, "not valid UTF-8 (byte 13)"},
		{"trailing data", "application/json", `{"input": "a"} {"input": "b"}`, 400, "data after the JSON object"},
		{"trailing garbage", "application/json", `{"input": "a"}x`, 400, "data after the JSON object"},
		{"text/plain", "text/plain", `{"input": "a"}`, 415, `text/plain\" is not application/json`},
		{"no content type", "", `{"input": "a"}`, 415, `Content-Type \"\" is not application/json`},
		{"json with charset", "application/json; charset=utf-8", `{"input": "a"}` + "\n", 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(c.body))
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.code || !strings.Contains(string(b), c.want) {
				t.Fatalf("got %d %s, want %d with %q", resp.StatusCode, b, c.code, c.want)
			}
		})
	}
}

// Issue 11.7: an unknown truncation value is refused, not taken as the
// default.
func TestUnknownTruncationRefused(t *testing.T) {
	ts := startServer(t, testConfig())
	_, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{"x"}, Options: &embeddv1.EmbedOptions{Truncation: 7}})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "options.truncation: 7 is not a known truncation") {
		t.Fatalf("truncation 7: %v", err)
	}
	ix := embeddv1.NewIndexServiceClient(ts.conn)
	_, err = ix.Search(context.Background(), &embeddv1.SearchRequest{Collection: "none", Queries: queries(1, 2), K: 1, Embed: &embeddv1.EmbedOptions{Truncation: 9}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("search with truncation 9: %v", err)
	}
}

// Issue 11.8: the HTTP timeouts come from the config, with defaults.
func TestHTTPTimeoutsConfigured(t *testing.T) {
	s, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if s.http.ReadTimeout != 60*time.Second || s.http.IdleTimeout != 120*time.Second {
		t.Errorf("defaults: read %v idle %v, want 60s and 120s", s.http.ReadTimeout, s.http.IdleTimeout)
	}
	cfg := testConfig()
	cfg.HTTPReadTimeout, cfg.HTTPIdleTimeout = core.Duration(5*time.Second), core.Duration(7*time.Second)
	if s, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if s.http.ReadTimeout != 5*time.Second || s.http.IdleTimeout != 7*time.Second {
		t.Errorf("configured: read %v idle %v, want 5s and 7s", s.http.ReadTimeout, s.http.IdleTimeout)
	}
}

// healthz sends GET /healthz on conn and reads the answer.
func healthz(conn net.Conn, r *bufio.Reader) (int, error) {
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Issue 11.8: open HTTP connections are capped. At the cap a new
// connection takes the place of the one idle longest (so /healthz probes
// get in whatever idle connections pile up); with every connection busy in
// a request it is closed at once, and a slot comes back when one closes.
func TestHTTPConnectionCap(t *testing.T) {
	cfg := testConfig()
	cfg.MaxHTTPConnections = 2
	dialer := func(ts *testServer) func() net.Conn {
		addr := strings.TrimPrefix(ts.httpBase, "http://")
		return func() net.Conn {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
	}
	// Idle keep-alive connections, then more: each new one gets in, and
	// the one idle longest is closed.
	dial := dialer(startServer(t, cfg))
	var idle []net.Conn
	for i := range 5 {
		c := dial()
		if code, err := healthz(c, bufio.NewReader(c)); code != 200 {
			t.Fatalf("connection %d (cap 2, the others idle): %d %v", i, code, err)
		}
		idle = append(idle, c)
		time.Sleep(20 * time.Millisecond) // the server marks it idle after answering
	}
	for i, c := range idle[:3] {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("idle connection %d was not closed for a newer one (read %d bytes)", i, n)
		}
	}
	for _, c := range idle[3:] {
		if code, err := healthz(c, bufio.NewReader(c)); code != 200 {
			t.Fatalf("the two newest connections: %d %v", code, err)
		}
	}
	// Two connections in a request (a body still to come), none idle: a
	// third is closed at once.
	dial = dialer(startServer(t, cfg))
	var busy []net.Conn
	for range 2 {
		c := dial()
		io.WriteString(c, "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
		busy = append(busy, c)
	}
	over := dial()
	if code, err := healthz(over, bufio.NewReader(over)); err == nil {
		t.Fatalf("a connection over a cap of 2 busy ones was answered %d", code)
	}
	busy[0].Close()
	// The server frees the slot once it reads the close: try a bounded
	// number of fresh connections.
	for i := 0; ; i++ {
		c := dial()
		code, err := healthz(c, bufio.NewReader(c))
		c.Close()
		if code == 200 {
			break
		}
		if i == 200 {
			t.Fatalf("no connection admitted after one of the two closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Issue 11.8: gRPC calls and streams are capped in total (health checks
// excepted), and each connection advertises the per-connection cap.
func TestGRPCCallCap(t *testing.T) {
	cfg := testConfig()
	cfg.MaxGRPCCalls = 2
	cfg.MaxConcurrentStreams = 7
	ts := startServer(t, cfg)
	ctx := context.Background()
	var streams []embeddv1.EmbeddingService_EmbedStreamClient
	for i := range 2 {
		st, err := ts.embed.EmbedStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&embeddv1.EmbedStreamRequest{Id: uint64(i), Texts: []string{"held"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	_, err := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: []string{"third"}})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "max_grpc_calls") {
		t.Fatalf("a third call with two streams open: %v, want RESOURCE_EXHAUSTED naming max_grpc_calls", err)
	}
	streams[0].CloseSend()
	if _, err := streams[0].Recv(); err != io.EOF {
		t.Fatalf("closing a stream: %v", err)
	}
	if _, err := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: []string{"third"}}); err != nil {
		t.Fatalf("a call once a stream ended: %v", err)
	}
	streams[1].CloseSend()
	streams[1].Recv()

	if got := advertisedMaxStreams(t, ts.conn.Target()); got != 7 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want 7", got)
	}
}

// advertisedMaxStreams opens an HTTP/2 connection to addr and returns the
// SETTINGS_MAX_CONCURRENT_STREAMS of the server's first SETTINGS frame.
func advertisedMaxStreams(t *testing.T, addr string) uint32 {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The client preface, then an empty SETTINGS frame.
	io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	c.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})
	r := bufio.NewReader(c)
	for range 10 {
		var h [9]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			t.Fatal(err)
		}
		n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			t.Fatal(err)
		}
		if h[3] != 4 || h[4]&1 != 0 { // not SETTINGS, or an ACK
			continue
		}
		for i := 0; i+6 <= n; i += 6 {
			if binary.BigEndian.Uint16(payload[i:]) == 3 {
				return binary.BigEndian.Uint32(payload[i+2:])
			}
		}
		return 0
	}
	t.Fatal("no SETTINGS frame from the server")
	return 0
}

// Issue 11.12: Compact reclaims replaced rows on request, and the
// collection answers as before.
func TestCompactRPC(t *testing.T) {
	ts := startServer(t, testConfig())
	ix := embeddv1.NewIndexServiceClient(ts.conn)
	ctx := context.Background()
	if _, err := ix.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "c", Dimension: 2, Metric: embeddv1.Metric_METRIC_DOT}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := ix.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "c", Records: []*embeddv1.Record{{Id: "x", Vector: []float32{1, float32(i)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := ix.Compact(ctx, &embeddv1.CompactRequest{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.RowsAfter != 1 || resp.RowsBefore < 2 || resp.Collection.GetCount() != 1 || resp.Collection.GetName() != "c" {
		t.Fatalf("compact: %v", resp)
	}
	sr, err := ix.Search(ctx, &embeddv1.SearchRequest{Collection: "c", Queries: queries(1, 2), K: 5, IncludeVectors: true})
	if err != nil || len(sr.Results[0].Hits) != 1 || fmt.Sprint(sr.Results[0].Hits[0].Vector) != "[1 19]" {
		t.Fatalf("search after compaction: %v %v", sr, err)
	}
	if _, err := ix.Compact(ctx, &embeddv1.CompactRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("compact of an unknown collection: %v", err)
	}
}
