package server

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/embedd/embedd/models/modelstest"
)

// BenchmarkBatchPriority measures, in one run and on one model with
// 128-token texts, what a batch costs interactive calls and what the batch
// gets:
//
//   - inprocess/batch=N: Model.Forward on N texts at once (the bulk lane's
//     batch size, and 64), texts/s: the model's own throughput;
//   - batch/idle: a batch of b.N requests through the Batch API on an
//     otherwise idle server, texts/s from create to completed;
//   - interactive/idle and interactive/under-batch: four clients sending
//     b.N one-text gRPC Embed calls between them, p50 and p99, on an idle
//     server and while a batch runs at full speed (it also reports the
//     batch's texts/s meanwhile).
//
// Run it with -benchtime=Nx (e.g. 128x).
func BenchmarkBatchPriority(b *testing.B) {
	if skipReason != "" {
		b.Skip(skipReason)
	}
	m, err := testReg.Get("a")
	if err != nil {
		b.Fatal(err)
	}
	// Every part of the run embeds texts of its own, in every repetition
	// (-count), so that none is served from the cache (which cache_bytes -1
	// does not turn off in a server: core.Open applies Defaults again).
	base := modelstest.Passages(b, m.Tokenizer(), 512, 128)
	made := 0
	fresh := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%d %s", made, base[made%len(base)]) // about 130 tokens
			made++
		}
		return out
	}
	texts := base
	ts := startServer(b, testConfig())
	bulk := ts.s.cfg.Models[0].BulkMaxBatchSize
	for _, size := range []int{bulk, 64} {
		b.Run(fmt.Sprintf("inprocess/batch=%d", size), func(b *testing.B) {
			start := time.Now()
			for lo := 0; lo < b.N; lo += size {
				if _, err := forward(m, texts[lo%len(texts):lo%len(texts)+min(size, b.N-lo)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "texts/s")
		})
	}
	file := func(texts []string, n int) string {
		var sb strings.Builder
		for i := range n {
			sb.WriteString(batchLine(fmt.Sprint("r", i), fmt.Sprintf(`{"input": %q, "model": "a"}`, texts[i%len(texts)])))
		}
		return sb.String()
	}
	b.Run("batch/idle", func(b *testing.B) {
		content := file(fresh(b.N), b.N)
		start := time.Now()
		id := createBatch(b, ts.httpBase, "", content)["id"].(string)
		if done := waitBatch(b, ts.httpBase, "", id); done["status"] != "completed" {
			b.Fatalf("batch %v", done)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "texts/s")
	})
	b.Run("interactive/idle/concurrency=4", func(b *testing.B) { unaryLoad(b, ts, fresh(b.N), 4) })
	b.Run("interactive/under-batch/concurrency=4", func(b *testing.B) {
		const background = 4096
		id := createBatch(b, ts.httpBase, "", file(fresh(background), background))["id"].(string)
		for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
			if _, v := do(b, "GET", ts.httpBase+"/v1/batches/"+id, "", "", nil); v["status"] == "in_progress" {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatal("the batch did not start within a minute")
			}
		}
		time.Sleep(time.Second) // the job's parts reach the bulk lane
		before, start := textsRun(b, ts), time.Now()
		unaryLoad(b, ts, fresh(b.N), 4)
		b.ReportMetric((textsRun(b, ts)-before-float64(b.N))/time.Since(start).Seconds(), "batch_texts/s")
		do(b, "POST", ts.httpBase+"/v1/batches/"+id+"/cancel", "", "", nil)
		waitBatch(b, ts.httpBase, "", id)
	})
}

// textsRun is the texts model "a" has run, from /metrics.
func textsRun(b *testing.B, ts *testServer) float64 {
	_, body := get(b, ts.httpBase+"/metrics", "")
	for l := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(l, `embedd_texts_total{model="a"} `); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no embedd_texts_total for model a in /metrics")
	return 0
}
