package server

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/models"
	"github.com/embedd/embedd/models/modelstest"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

var corpus = func() []string {
	words := strings.Fields("the state of the union is strong and our economy grows while congress debates new laws for schools roads hospitals farms and the defense of freedom across every nation")
	out := make([]string, 40)
	for i := range out {
		n := 3 + i%17
		var b strings.Builder
		for j := range n {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[(i*7+j*3)%len(words)])
		}
		out[i] = b.String()
	}
	return out
}()

// unbatched embeds each text alone, straight through the model.
func unbatched(t *testing.T, model string, texts []string) [][]float32 {
	t.Helper()
	m, err := testReg.Get(model)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float32, len(texts))
	for i, s := range texts {
		r, err := forward(m, []string{s})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r[0]
	}
	return out
}

// forward runs texts through m as one batch (truncated to the model's
// length), with the model's default options: the model alone, without the
// core's limits, cache or batcher.
func forward(m *models.Model, texts []string) ([][]float32, error) {
	seqs := make([][]int32, len(texts))
	out := make([][]float32, len(texts))
	for i, t := range texts {
		var err error
		if seqs[i], err = m.Tokenize(nil, i, t, models.TruncateEnd); err != nil {
			return nil, err
		}
		out[i] = make([]float32, m.Info().Dim)
	}
	if err := m.Forward(seqs, out); err != nil {
		return nil, err
	}
	for i, v := range out {
		out[i] = m.Finish(v, models.Options{})
	}
	return out, nil
}

func TestConcurrentClientsGetUnbatchedVectors(t *testing.T) {
	cfg := testConfig()
	cfg.CacheBytes = -1 // every text goes through the batcher
	ts := startServer(t, cfg)
	want := unbatched(t, "a", corpus)
	var answered int
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for c := range 64 {
		wg.Go(func() {
			for r := range 6 {
				n := 1 + (c+r)%3
				idx := make([]int, n)
				texts := make([]string, n)
				for j := range n {
					idx[j] = (c*5 + r*3 + j*11) % len(corpus)
					texts[j] = corpus[idx[j]]
				}
				resp, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: texts})
				if err != nil {
					errs <- fmt.Errorf("client %d request %d: %w", c, r, err)
					return
				}
				for j, e := range resp.Embeddings {
					if cs := modelstest.Cosine(e.Values, want[idx[j]]); cs < 0.99999 {
						errs <- fmt.Errorf("client %d request %d text %d: cosine %.7f to the unbatched vector", c, r, j, cs)
						return
					}
				}
				mu.Lock()
				answered++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if answered != 64*6 {
		t.Errorf("%d of %d requests answered", answered, 64*6)
	}
}

func TestFullQueueRefusesWhileOthersSucceed(t *testing.T) {
	cfg := testConfig()
	cfg.CacheBytes = -1
	cfg.MaxTextsPerRequest = 4
	cfg.Models[0].QueueSize, cfg.Models[0].MaxBatchSize = 4, 1
	ts := startServer(t, cfg)
	long := strings.Repeat("a long text for a slow batch ", 40)
	first := make(chan error, 1)
	go func() {
		_, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{long, long + "1", long + "2", long + "3"}})
		first <- err
	}()
	depth := func() int { q, _ := ts.s.core.Load().Queue("a"); return q.Depth }
	for depth() != 3 { // one running, three waiting
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() {
		_, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{"fills the queue"}})
		second <- err
	}()
	for depth() != 4 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{"one too many"}})
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "retry after") {
		t.Fatalf("full queue: got %v, want RESOURCE_EXHAUSTED with a retry hint", err)
	}
	var hint *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hint = ri
		}
	}
	if hint == nil || hint.RetryDelay.AsDuration() <= 0 {
		t.Errorf("RESOURCE_EXHAUSTED without a RetryInfo detail: %v", st.Details())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusal took %v; it must come at once", d)
	}
	// Others still get served meanwhile: another model, and metadata calls.
	if _, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{"model b is free"}, Options: &embeddv1.EmbedOptions{Model: "b"}}); err != nil {
		t.Errorf("model b while a is full: %v", err)
	}
	if _, err := ts.embed.ListModels(context.Background(), &embeddv1.ListModelsRequest{}); err != nil {
		t.Errorf("ListModels while a is full: %v", err)
	}
	for _, c := range []chan error{first, second} {
		if err := <-c; err != nil {
			t.Errorf("queued request failed: %v", err)
		}
	}
}

func TestDeadlineAndCancellation(t *testing.T) {
	cfg := testConfig()
	cfg.CacheBytes = -1
	cfg.Models[0].MaxBatchSize = 1
	ts := startServer(t, cfg)
	long := strings.Repeat("deadline words ", 100)
	texts := []string{long, long + "x", long + "y", long + "z"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: texts})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("30ms deadline on 4 long texts: got %v, want DEADLINE_EXCEEDED", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := ts.embed.Embed(ctx2, &embeddv1.EmbedRequest{Texts: []string{long + "1", long + "2", long + "3", long + "4"}})
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel2()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Errorf("cancelled call: got %v, want CANCELED", err)
	}
	// The server dropped texts of the ended calls before running them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var dropped float64
		mfs, _ := ts.s.metrics.reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "embedd_dropped_texts_total" {
				for _, m := range mf.Metric {
					dropped += m.GetCounter().GetValue()
				}
			}
		}
		if dropped > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no text of the expired or cancelled calls was dropped before inference")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And it keeps serving.
	if _, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{"still here"}}); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTextsPerRequest, cfg.MaxTextBytes = 8, 1000
	ts := startServer(t, cfg)
	reject := &embeddv1.EmbedOptions{Truncation: embeddv1.Truncation_TRUNCATION_REJECT}
	cases := []struct {
		name string
		req  *embeddv1.EmbedRequest
		code codes.Code
		want string
	}{
		{"empty list", &embeddv1.EmbedRequest{}, codes.InvalidArgument, "texts: the list is empty"},
		{"unknown model", &embeddv1.EmbedRequest{Texts: []string{"x"}, Options: &embeddv1.EmbedOptions{Model: "nope"}}, codes.NotFound, `model "nope" is not loaded (have a, b)`},
		{"too many texts", &embeddv1.EmbedRequest{Texts: make([]string, 9)}, codes.InvalidArgument, "texts: 9 texts is over the limit of 8"},
		{"oversize text", &embeddv1.EmbedRequest{Texts: []string{"ok", strings.Repeat("x", 1001)}}, codes.InvalidArgument, "texts[1]: 1001 bytes is over the limit of 1000"},
		{"invalid utf-8", &embeddv1.EmbedRequest{Texts: []string{"ok", "bad \xff"}}, codes.InvalidArgument, "texts[1]: is not valid UTF-8"},
		{"too long, reject", &embeddv1.EmbedRequest{Texts: []string{strings.Repeat("a ", 300)}, Options: reject}, codes.InvalidArgument, "texts[0]: has 302 tokens, over model a's limit of 256"},
		{"bad dimensions", &embeddv1.EmbedRequest{Texts: []string{"x"}, Options: &embeddv1.EmbedOptions{Dimensions: 999}}, codes.InvalidArgument, "dimensions 999 is not in [1, 384]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ts.embed.Embed(context.Background(), c.req)
			st := status.Convert(err)
			if st.Code() != c.code || !strings.Contains(st.Message(), c.want) {
				t.Errorf("got %v %q, want %v containing %q", st.Code(), st.Message(), c.code, c.want)
			}
		})
	}
	// A message over max_message_bytes is refused by the transport.
	msgCfg := testConfig()
	msgCfg.MaxMessageBytes = 4096
	small := startServer(t, msgCfg)
	_, err := small.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{strings.Repeat("x", 3000), strings.Repeat("y", 3000)}})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "larger than max") {
		t.Errorf("6 KB message to a 4 KB limit: got %v", err)
	}
	// The server is unharmed.
	resp, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{"fine"}, Options: &embeddv1.EmbedOptions{Dimensions: 64}})
	if err != nil || len(resp.Embeddings[0].Values) != 64 || resp.Model != "a" {
		t.Fatalf("after bad input: %v %v", resp, err)
	}
}

func TestEmbedStreamAnswersInOrderWithPerChunkErrors(t *testing.T) {
	ts := startServer(t, testConfig())
	stream, err := ts.embed.EmbedStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := unbatched(t, "a", corpus)
	const chunks = 30
	go func() {
		for i := range chunks {
			req := &embeddv1.EmbedStreamRequest{Id: uint64(i), Texts: []string{corpus[i], corpus[i+1]}}
			if i == 7 {
				req.Texts = nil // a bad chunk
			}
			if err := stream.Send(req); err != nil {
				return
			}
		}
		stream.CloseSend()
	}()
	for i := range chunks {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if resp.Id != uint64(i) {
			t.Fatalf("response %d has id %d: out of order", i, resp.Id)
		}
		if i == 7 {
			if resp.Error == nil || codes.Code(resp.Error.Code) != codes.InvalidArgument {
				t.Errorf("bad chunk answered %v, want an INVALID_ARGUMENT error", resp)
			}
			continue
		}
		if resp.Error != nil || len(resp.Embeddings) != 2 {
			t.Fatalf("chunk %d: %v", i, resp)
		}
		for j := range 2 {
			if c := modelstest.Cosine(resp.Embeddings[j].Values, want[i+j]); c < 0.99999 {
				t.Errorf("chunk %d text %d: cosine %g", i, j, c)
			}
		}
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("stream did not end after the last answer")
	}
}

func TestTokenizeAndListModels(t *testing.T) {
	ts := startServer(t, testConfig())
	resp, err := ts.embed.Tokenize(context.Background(), &embeddv1.TokenizeRequest{Texts: []string{"Hello, world!", strings.Repeat("word ", 300)}, Truncate: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Tokens[0].Ids; fmt.Sprint(got) != "[101 7592 1010 2088 999 102]" {
		t.Errorf("Tokenize = %v", got)
	}
	if n := len(resp.Tokens[1].Ids); n != 256 {
		t.Errorf("truncated tokenization has %d ids, want 256", n)
	}
	lm, err := ts.embed.ListModels(context.Background(), &embeddv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(lm.Models) != 2 || lm.Models[0].Id != "a" || !lm.Models[0].Default || lm.Models[0].Dimensions != 384 ||
		lm.Models[0].MaxLength != 256 || lm.Models[0].Pooling != "mean" || lm.Models[0].Device != "cpu" || lm.Models[0].Kind != "onnx" || lm.Models[1].Default {
		t.Errorf("ListModels = %v", lm.Models)
	}
}

func TestCacheServesRepeatsAndKeepsOptionsApart(t *testing.T) {
	ts := startServer(t, testConfig())
	ctx := context.Background()
	full, err := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: []string{"cache me"}})
	if err != nil {
		t.Fatal(err)
	}
	f := false
	raw, err := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: []string{"cache me"}, Options: &embeddv1.EmbedOptions{Normalize: &f, Dimensions: 16}})
	if err != nil {
		t.Fatal(err)
	}
	again, err := ts.embed.Embed(ctx, &embeddv1.EmbedRequest{Texts: []string{"cache me"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(raw.Embeddings[0].Values) != 16 {
		t.Fatalf("dimensions 16 from the cache gave %d", len(raw.Embeddings[0].Values))
	}
	for i, v := range again.Embeddings[0].Values {
		if v != full.Embeddings[0].Values[i] {
			t.Fatal("cached vector differs from the first answer (options leaked into the cache?)")
		}
	}
	var n float64
	for _, v := range raw.Embeddings[0].Values {
		n += float64(v) * float64(v)
	}
	if math.Abs(math.Sqrt(n)-1) < 1e-3 {
		t.Error("normalize=false answered a normalised vector")
	}
	hits := ts.s.core.Load().CacheStats().Hits
	if hits < 2 {
		t.Errorf("cache hits = %d after two repeats", hits)
	}
}
