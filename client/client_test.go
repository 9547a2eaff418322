package client_test

import (
	"context"
	"errors"
	"iter"
	"math"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/client"
	"github.com/embedd/embedd/client/clienttest"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastRetries keeps the tests quick: waits of 1, 2, 4... ms.
var fastRetries = client.RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: time.Second}

// dial connects to s and closes the client when the test ends.
func dial(t *testing.T, target string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), target, append([]client.Option{client.WithRetryPolicy(fastRetries)}, opts...)...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("error %v has code %v, want %v", err, status.Code(err), code)
	}
}

func TestEmbed(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 8})
	c := dial(t, s.Addr())
	ctx := context.Background()
	texts := []string{"hello", "world", ""}

	got, err := c.Embed(ctx, texts, client.EmbedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		if want := clienttest.Vector(text, 8); !slices.Equal(got[i], want) {
			t.Errorf("vector %d = %v, want %v", i, got[i], want)
		}
	}

	info, err := c.EmbedInfo(ctx, texts[:1], client.EmbedOptions{Model: clienttest.ModelID, Dimensions: 4, Normalize: client.NormalizeOn})
	if err != nil {
		t.Fatal(err)
	}
	if info.Model != clienttest.ModelID || info.Tokens != uint64(len(clienttest.Tokens("hello", true))) {
		t.Errorf("EmbedInfo = model %q, %d tokens", info.Model, info.Tokens)
	}
	v := info.Vectors[0]
	var norm float64
	for _, x := range v {
		norm += float64(x) * float64(x)
	}
	if len(v) != 4 || math.Abs(norm-1) > 1e-5 {
		t.Errorf("with Dimensions 4 and NormalizeOn: %v (norm² %v)", v, norm)
	}

	_, err = c.Embed(ctx, []string{"a"}, client.EmbedOptions{Model: "nope"})
	wantCode(t, err, codes.NotFound)
	if !strings.HasPrefix(err.Error(), "embedd/client: Embed: ") {
		t.Errorf("error %q lacks the package and call", err)
	}
	_, err = c.Embed(ctx, []string{strings.Repeat("x", 100)}, client.EmbedOptions{RejectOverlong: true})
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.Embed(ctx, []string{"a"}, client.EmbedOptions{Dimensions: -1})
	if err == nil || !strings.Contains(err.Error(), "Dimensions: -1") {
		t.Errorf("Dimensions -1: %v", err)
	}
}

func TestTokenizeAndModels(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 8})
	c := dial(t, s.Addr())
	ctx := context.Background()
	long := strings.Repeat("y", 40)
	ids, err := c.Tokenize(ctx, []string{"ab", long}, client.TokenizeOptions{Truncate: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids[0], []int32{101, 1000 + 'a', 1000 + 'b', 102}) || len(ids[1]) != clienttest.MaxLength {
		t.Errorf("Tokenize = %v", ids)
	}
	models, err := c.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 1 || models[0].GetId() != clienttest.ModelID || models[0].GetDimensions() != 8 {
		t.Errorf("ListModels = %v", models)
	}
}

func TestAPIKey(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{APIKey: "s3cret"})
	ctx := context.Background()

	good := dial(t, s.Addr(), client.WithAPIKey("s3cret"))
	if _, err := good.Embed(ctx, []string{"a"}, client.EmbedOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := s.LastAuth(); got != "Bearer s3cret" {
		t.Errorf("the server saw authorization %q", got)
	}
	for r, err := range good.EmbedStream(ctx, slices.Values([][]string{{"a"}}), client.EmbedOptions{}) {
		if err != nil || len(r.Vectors) != 1 {
			t.Fatalf("stream with the key: %v, %v", r, err)
		}
	}

	for name, c := range map[string]*client.Client{
		"none":  dial(t, s.Addr()),
		"wrong": dial(t, s.Addr(), client.WithAPIKey("guess")),
	} {
		before := s.Calls("Embed")
		_, err := c.Embed(ctx, []string{"a"}, client.EmbedOptions{})
		wantCode(t, err, codes.Unauthenticated)
		if n := s.Calls("Embed") - before; n != 1 {
			t.Errorf("%s key: UNAUTHENTICATED was tried %d times, want once", name, n)
		}
	}
}

func TestRetriesTransientFailures(t *testing.T) {
	for name, f := range map[string]clienttest.Failure{
		"unavailable":           {Code: codes.Unavailable},
		"unavailable with hint": {Code: codes.Unavailable, RetryInfo: 5 * time.Millisecond},
		"exhausted, RetryInfo":  {Code: codes.ResourceExhausted, RetryInfo: 5 * time.Millisecond},
		"exhausted, trailer":    {Code: codes.ResourceExhausted, RetryAfter: 5 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{})
			c := dial(t, s.Addr())
			s.FailNext(3, f)
			v, err := c.Embed(context.Background(), []string{"a"}, client.EmbedOptions{})
			if err != nil {
				t.Fatalf("after 3 transient failures and 4 attempts: %v", err)
			}
			if !slices.Equal(v[0], clienttest.Vector("a", 8)) {
				t.Errorf("vector %v", v[0])
			}
			if n := s.Calls("Embed"); n != 4 {
				t.Errorf("%d attempts, want 4", n)
			}
		})
	}
}

func TestHonoursRetryHint(t *testing.T) {
	for name, f := range map[string]clienttest.Failure{
		"RetryInfo": {Code: codes.ResourceExhausted, RetryInfo: 60 * time.Millisecond},
		"trailer":   {Code: codes.ResourceExhausted, RetryAfter: 60 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{})
			c := dial(t, s.Addr()) // its own backoff would be 1ms, then 2ms
			s.FailNext(2, f)
			start := time.Now()
			if _, err := c.Embed(context.Background(), []string{"a"}, client.EmbedOptions{}); err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el < 120*time.Millisecond {
				t.Errorf("two 60ms hints were waited out in %v", el)
			}
		})
	}
}

func TestStopsAtAttemptLimit(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{})
	c := dial(t, s.Addr(), client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond}))
	s.FailNext(10, clienttest.Failure{Code: codes.Unavailable})
	_, err := c.Embed(context.Background(), []string{"a"}, client.EmbedOptions{})
	wantCode(t, err, codes.Unavailable)
	if n := s.Calls("Embed"); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

func TestDoesNotRetry(t *testing.T) {
	for name, f := range map[string]clienttest.Failure{
		"invalid argument":         {Code: codes.InvalidArgument, RetryInfo: time.Millisecond},
		"internal":                 {Code: codes.Internal},
		"exhausted without a hint": {Code: codes.ResourceExhausted},
		"hint over MaxBackoff":     {Code: codes.ResourceExhausted, RetryInfo: 2 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			s := clienttest.Start(t, clienttest.Config{})
			c := dial(t, s.Addr())
			s.FailNext(1, f)
			start := time.Now()
			_, err := c.Embed(context.Background(), []string{"a"}, client.EmbedOptions{})
			wantCode(t, err, f.Code)
			if n := s.Calls("Embed"); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
			if el := time.Since(start); el > time.Second {
				t.Errorf("took %v to fail", el)
			}
		})
	}
}

func TestRespectsDeadline(t *testing.T) {
	t.Run("hint", func(t *testing.T) {
		s := clienttest.Start(t, clienttest.Config{})
		c := dial(t, s.Addr(), client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: 10, MaxBackoff: 5 * time.Second}))
		s.FailNext(10, clienttest.Failure{Code: codes.ResourceExhausted, RetryInfo: 200 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Embed(ctx, []string{"a"}, client.EmbedOptions{})
		el := time.Since(start)
		// One wait of 200-240ms fits in 300ms; a second would not, so the
		// client returns the server's error before the deadline.
		wantCode(t, err, codes.ResourceExhausted)
		if n := s.Calls("Embed"); n != 2 {
			t.Errorf("%d attempts, want 2", n)
		}
		if el < 200*time.Millisecond || el >= 300*time.Millisecond {
			t.Errorf("returned after %v; want one 200ms wait and no sleep past the 300ms deadline", el)
		}
	})
	t.Run("backoff", func(t *testing.T) {
		s := clienttest.Start(t, clienttest.Config{})
		c := dial(t, s.Addr(), client.WithRetryPolicy(client.RetryPolicy{InitialBackoff: time.Second}))
		s.FailNext(10, clienttest.Failure{Code: codes.Unavailable})
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Embed(ctx, []string{"a"}, client.EmbedOptions{})
		wantCode(t, err, codes.Unavailable)
		if el := time.Since(start); el > 400*time.Millisecond {
			t.Errorf("returned after %v; a backoff of 0.8s or more cannot fit the 500ms deadline, so it should return at once", el)
		}
	})
	t.Run("cancel while waiting", func(t *testing.T) {
		s := clienttest.Start(t, clienttest.Config{})
		c := dial(t, s.Addr(), client.WithRetryPolicy(client.RetryPolicy{InitialBackoff: time.Second}))
		s.FailNext(10, clienttest.Failure{Code: codes.Unavailable})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := c.Embed(ctx, []string{"a"}, client.EmbedOptions{})
		wantCode(t, err, codes.Canceled)
		if el := time.Since(start); el > 700*time.Millisecond {
			t.Errorf("returned %v after the cancel", el-100*time.Millisecond)
		}
		if !strings.Contains(err.Error(), "Unavailable") {
			t.Errorf("error %q does not mention the failure it was waiting to retry", err)
		}
	})
}

func TestTimeout(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{})
	c := dial(t, s.Addr(), client.WithTimeout(100*time.Millisecond))
	s.SetDelay(5 * time.Second)
	start := time.Now()
	_, err := c.Embed(context.Background(), []string{"a"}, client.EmbedOptions{})
	wantCode(t, err, codes.DeadlineExceeded)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("a 100ms timeout took %v", el)
	}
	// A deadline of the caller's own wins over the default timeout.
	s.SetDelay(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Embed(ctx, []string{"a"}, client.EmbedOptions{}); err != nil {
		t.Errorf("with the caller's 5s deadline: %v", err)
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestHealth(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{APIKey: "k"}) // health needs no key
	c := dial(t, s.Addr())
	ctx := context.Background()
	st, err := c.Health(ctx, "")
	if err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Health = %v, %v", st, err)
	}
	s.Health().SetServingStatus("embedd.v1.IndexService", healthpb.HealthCheckResponse_NOT_SERVING)
	if st, err := c.Health(ctx, "embedd.v1.IndexService"); err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Health(IndexService) = %v, %v", st, err)
	}
	_, err = c.Health(ctx, "nope")
	wantCode(t, err, codes.NotFound)

	// Health is not retried: against a dead address it fails at once
	// although the retry policy would wait a second.
	dead := dial(t, deadAddr(t), client.WithRetryPolicy(client.RetryPolicy{InitialBackoff: time.Second}))
	start := time.Now()
	_, err = dead.Health(ctx, "")
	wantCode(t, err, codes.Unavailable)
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Errorf("a health check of a dead server took %v", el)
	}
}

func TestTLS(t *testing.T) {
	cfg, caFile := clienttest.SelfSigned(t)
	s := clienttest.Start(t, clienttest.Config{TLS: cfg})
	c := dial(t, s.Addr(), client.WithTLSCAFile(caFile))
	if _, err := c.Embed(context.Background(), []string{"a"}, client.EmbedOptions{}); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	// Plaintext to a TLS server fails (and is retried as UNAVAILABLE).
	plain := dial(t, s.Addr())
	_, err := plain.Embed(context.Background(), []string{"a"}, client.EmbedOptions{})
	wantCode(t, err, codes.Unavailable)

	if _, err := client.Dial(context.Background(), s.Addr(), client.WithTLSCAFile(caFile+".missing")); err == nil || !strings.Contains(err.Error(), "TLS CA file") {
		t.Errorf("a missing CA file: %v", err)
	}
}

func TestDialBlock(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, s.Addr(), client.WithBlock())
	if err != nil {
		t.Fatalf("WithBlock to a live server: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	var nilClient *client.Client
	if err := nilClient.Close(); err != nil {
		t.Errorf("Close on nil: %v", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := client.Dial(ctx, deadAddr(t), client.WithBlock()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WithBlock to a dead address: %v", err)
	}
}

func TestEmbedStream(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 4})
	c := dial(t, s.Addr(), client.WithStreamWindow(3))
	ctx := context.Background()

	// 50 chunks of 1 to 5 texts; chunk 7 is refused.
	var chunks [][]string
	var all []string
	for i := range 50 {
		var chunk []string
		for j := range i%5 + 1 {
			text := strings.Repeat("t", i) + string(rune('a'+j))
			if i == 7 && j == 0 {
				text = "invalid: chunk 7"
			}
			chunk = append(chunk, text)
			all = append(all, text)
		}
		chunks = append(chunks, chunk)
	}
	var results []client.StreamResult
	for r, err := range c.EmbedStream(ctx, slices.Values(chunks), client.EmbedOptions{}) {
		if ce, ok := errors.AsType[*client.ChunkError](err); ok {
			if ce.Chunk != 7 || status.Code(ce) != codes.InvalidArgument || ce.Len != 3 {
				t.Fatalf("chunk error %+v", ce)
			}
			results = append(results, r)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	if len(results) != len(chunks) {
		t.Fatalf("%d results for %d chunks", len(results), len(chunks))
	}
	first := 0
	for i, r := range results {
		if r.Chunk != i || r.First != first {
			t.Fatalf("result %d is chunk %d starting at %d, want chunk %d starting at %d", i, r.Chunk, r.First, i, first)
		}
		if i != 7 {
			for j, v := range r.Vectors {
				if want := clienttest.Vector(all[first+j], 4); !slices.Equal(v, want) {
					t.Fatalf("chunk %d text %d: %v, want %v", i, j, v, want)
				}
			}
		}
		first += len(chunks[i])
	}
}

// TestEmbedStreamWindow checks that no more than the window's chunks are
// sent before their answers are read.
func TestEmbedStreamWindow(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{})
	const window = 3
	c := dial(t, s.Addr(), client.WithStreamWindow(window))
	var highest atomic.Int64 // the latest chunk the sender pulled
	seq := func(yield func([]string) bool) {
		for i := range 40 {
			highest.Store(int64(i))
			if !yield([]string{"x"}) {
				return
			}
		}
	}
	maxAhead := int64(0)
	for r, err := range c.EmbedStream(context.Background(), seq, client.EmbedOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // let the sender run as far as it may
		maxAhead = max(maxAhead, highest.Load()-int64(r.Chunk))
	}
	// Chunks r.Chunk+1 to r.Chunk+window may be in flight, and the sender
	// may hold one more while it waits for room.
	if maxAhead > window+1 {
		t.Errorf("the sender ran %d chunks ahead of the consumer; the window is %d", maxAhead, window)
	}
	if maxAhead < window {
		t.Errorf("the sender ran at most %d chunks ahead; the window of %d is not used", maxAhead, window)
	}
}

func TestEmbedStreamStopEarly(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{})
	c := dial(t, s.Addr())
	endless := func(yield func([]string) bool) {
		for {
			if !yield([]string{"again"}) {
				return
			}
		}
	}
	n := 0
	for _, err := range c.EmbedStream(context.Background(), endless, client.EmbedOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 10 {
			break // goleak (TestMain) checks that the sender is gone
		}
	}
	// A cancelled context ends the stream with CANCELED.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last error
	n = 0
	for _, err := range c.EmbedStream(ctx, endless, client.EmbedOptions{}) {
		if err != nil {
			last = err
			break
		}
		if n++; n == 5 {
			cancel()
		}
	}
	wantCode(t, last, codes.Canceled)
}

func TestEmbedStreamErrors(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{APIKey: "k"})
	c := dial(t, s.Addr())
	var errs []error
	for _, err := range c.EmbedStream(context.Background(), slices.Values([][]string{{"a"}, {"b"}}), client.EmbedOptions{}) {
		errs = append(errs, err)
	}
	if len(errs) != 1 {
		t.Fatalf("a refused stream yielded %d times: %v", len(errs), errs)
	}
	wantCode(t, errs[0], codes.Unauthenticated)
	if _, ok := errors.AsType[*client.ChunkError](errs[0]); ok {
		t.Errorf("a stream-wide error is a ChunkError: %v", errs[0])
	}
	// No chunks at all: nothing is yielded.
	ok := dial(t, s.Addr(), client.WithAPIKey("k"))
	var empty iter.Seq[[]string] = func(func([]string) bool) {}
	for r, err := range ok.EmbedStream(context.Background(), empty, client.EmbedOptions{}) {
		t.Errorf("an empty stream yielded %v, %v", r, err)
	}
}

func TestIndex(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 4})
	c := dial(t, s.Addr())
	ctx := context.Background()
	coll, err := c.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "docs", Dimension: 2, Metric: embeddv1.Metric_METRIC_DOT})
	if err != nil || coll.GetName() != "docs" || coll.GetDimension() != 2 {
		t.Fatalf("CreateCollection = %v, %v", coll, err)
	}
	_, err = c.CreateCollection(ctx, &embeddv1.CreateCollectionRequest{Name: "docs", Dimension: 2})
	wantCode(t, err, codes.AlreadyExists)

	n, err := c.Upsert(ctx, &embeddv1.UpsertRequest{Collection: "docs", Records: []*embeddv1.Record{
		{Id: "a", Vector: []float32{1, 0}, Metadata: []byte(`{"lang":"en"}`)},
		{Id: "b", Vector: []float32{0, 1}, Metadata: []byte(`{"lang":"fr"}`)},
		{Id: "c", Vector: []float32{0.5, 0.5}, Metadata: []byte(`{"lang":"en"}`)},
	}})
	if err != nil || n != 3 {
		t.Fatalf("Upsert = %d, %v", n, err)
	}
	res, err := c.Search(ctx, &embeddv1.SearchRequest{Collection: "docs", K: 2, Queries: []*embeddv1.Query{
		{Query: &embeddv1.Query_Vector{Vector: &embeddv1.Embedding{Values: []float32{1, 0.1}}}},
	}, Filter: map[string]string{"lang": "en"}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range res[0].GetHits() {
		ids = append(ids, h.GetId())
	}
	if !slices.Equal(ids, []string{"a", "c"}) {
		t.Errorf("Search hits %v, want [a c]", ids)
	}
	got, err := c.Get(ctx, "docs", []string{"b", "zz"})
	if err != nil || len(got.GetRecords()) != 1 || got.GetRecords()[0].GetId() != "b" || !slices.Equal(got.GetMissing(), []string{"zz"}) {
		t.Errorf("Get = %v, %v", got, err)
	}
	if n, err := c.Delete(ctx, "docs", []string{"a", "zz"}); err != nil || n != 1 {
		t.Errorf("Delete = %d, %v", n, err)
	}
	colls, err := c.ListCollections(ctx)
	if err != nil || len(colls) != 1 || colls[0].GetCount() != 2 {
		t.Errorf("ListCollections = %v, %v", colls, err)
	}
	if err := c.DropCollection(ctx, "docs"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.DropCollection(ctx, "docs"), codes.NotFound)
}
