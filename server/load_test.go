package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/embedd/embedd/models/modelstest"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// BenchmarkServerLoad compares, in one run and on one model, the
// in-process batch throughput (Model.Forward on 64 texts at once, after
// tokenizing them) with the
// running server over loopback gRPC at 1, 16 and 64 concurrent clients,
// each sending one 128-token text per call. Every sub-benchmark embeds b.N
// texts; run it with -benchtime=Nx (e.g. 256x, a multiple of 64). It
// reports texts/s and, for the server, p50 and p99 latency.
func BenchmarkServerLoad(b *testing.B) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	m, err := testReg.Get("a")
	if err != nil {
		b.Fatal(err)
	}
	texts := modelstest.Passages(b, m.Tokenizer(), 512, 128)
	b.Run("inprocess/batch=64", func(b *testing.B) {
		// b.N texts, in batches of 64 (the last one may be short).
		start := time.Now()
		for lo := 0; lo < b.N; lo += 64 {
			batch := texts[lo%len(texts) : lo%len(texts)+min(64, b.N-lo)]
			if _, err := forward(m, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "texts/s")
	})
	cfg := testConfig()
	cfg.CacheBytes = -1 // measure the model, not the cache
	ts := startServer(b, cfg)
	for _, c := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("grpc/concurrency=%d", c), func(b *testing.B) {
			unaryLoad(b, ts, texts, c)
		})
	}
	b.Run("grpcstream/streams=64", func(b *testing.B) { streamLoad(b, ts, texts, 64) })
}

// unaryLoad has c clients send b.N one-text Embed calls between them and
// reports texts/s and the p50 and p99 latency.
func unaryLoad(b *testing.B, ts *testServer, texts []string, c int) {
	runLoad(b, c, func(i int) error {
		_, err := ts.embed.Embed(context.Background(), &embeddv1.EmbedRequest{Texts: []string{texts[i%len(texts)]}})
		return err
	})
}

// runLoad makes b.N calls call(0), …, call(b.N-1) from c goroutines and
// reports texts/s (a call is one text) and the p50 and p99 latency; the
// first error fails the benchmark.
func runLoad(b *testing.B, c int, call func(i int) error) {
	var next atomic.Int64
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	errs := make(chan error, c)
	start := time.Now()
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				err := call(i)
				lat[i] = time.Since(t0)
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "texts/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}

// streamLoad has n EmbedStream streams send b.N texts between them, one
// text per message, each stream keeping up to 16 messages in flight, and
// reports texts/s: the bulk path end to end.
func streamLoad(b *testing.B, ts *testServer, texts []string, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	start := time.Now()
	for range n {
		wg.Go(func() {
			stream, err := ts.embed.EmbedStream(context.Background())
			if err != nil {
				errs <- err
				return
			}
			window := make(chan struct{}, 16)
			recvDone := make(chan struct{})
			go func() {
				defer close(recvDone)
				for {
					resp, err := stream.Recv()
					if err != nil {
						return // io.EOF after CloseSend
					}
					if resp.Error != nil {
						errs <- fmt.Errorf("chunk %d: %s", resp.Id, resp.Error.Message)
					}
					<-window
				}
			}()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					break
				}
				window <- struct{}{}
				if err := stream.Send(&embeddv1.EmbedStreamRequest{Id: uint64(i), Texts: []string{texts[i%len(texts)]}}); err != nil {
					errs <- err
					break
				}
			}
			stream.CloseSend()
			<-recvDone
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "texts/s")
}
