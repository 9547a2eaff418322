package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/embedd/embedd/batches"
	"github.com/embedd/embedd/core/cache"
)

// metrics are the server's Prometheus collectors, on a registry of their
// own so that several servers (tests) can live in one process.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec   // method, code
	latency      *prometheus.HistogramVec // method
	batchRows    *prometheus.HistogramVec // model
	batchPadding *prometheus.HistogramVec // model: padded/real tokens
	batchRun     *prometheus.HistogramVec // model
	queueWait    *prometheus.HistogramVec // model
	tokens       *prometheus.CounterVec   // model
	texts        *prometheus.CounterVec   // model
}

// registerBatches exports the progress of the OpenAI Batch API's batches,
// read from progress: how many batches are in each status, and their
// requests (total, completed, failed), for dashboards of bulk work.
func (m *metrics) registerBatches(progress func() batches.Progress) {
	for _, status := range batches.Statuses {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "embedd_openai_batches", Help: "OpenAI Batch API batches in each status.",
			ConstLabels: prometheus.Labels{"status": status},
		}, func() float64 { return float64(progress().ByStatus[status]) }))
	}
	for _, state := range []struct {
		name string
		n    func(batches.RequestCounts) int64
	}{
		{"total", func(c batches.RequestCounts) int64 { return c.Total }},
		{"completed", func(c batches.RequestCounts) int64 { return c.Completed }},
		{"failed", func(c batches.RequestCounts) int64 { return c.Failed }},
	} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "embedd_openai_batch_requests", Help: "Requests of the OpenAI Batch API's batches: total, completed, failed.",
			ConstLabels: prometheus.Labels{"state": state.name},
		}, func() float64 { return float64(state.n(progress().Requests)) }))
	}
}

// registerCache exports the embedding cache's own counters, read from
// stats.
func (m *metrics) registerCache(stats func() cache.Stats) {
	stat := func(f func(cache.Stats) float64) func() float64 { return func() float64 { return f(stats()) } }
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "embedd_cache_hits_total", Help: "Embedding cache hits."},
			stat(func(s cache.Stats) float64 { return float64(s.Hits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "embedd_cache_misses_total", Help: "Embedding cache misses."},
			stat(func(s cache.Stats) float64 { return float64(s.Misses) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "embedd_cache_evictions_total", Help: "Embedding cache evictions."},
			stat(func(s cache.Stats) float64 { return float64(s.Evictions) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "embedd_cache_bytes", Help: "Bytes held by the embedding cache."},
			stat(func(s cache.Stats) float64 { return float64(s.Bytes) })),
	)
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "embedd_requests_total", Help: "Requests by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "embedd_request_duration_seconds", Help: "Request latency by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method"}),
		batchRows: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "embedd_batch_size", Help: "Texts per model batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}, []string{"model"}),
		batchPadding: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "embedd_batch_padding_ratio", Help: "Padded tokens over real tokens per batch.",
			Buckets: []float64{1, 1.05, 1.1, 1.25, 1.5, 2, 3},
		}, []string{"model"}),
		batchRun: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "embedd_batch_duration_seconds", Help: "Inference time per batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"model"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "embedd_queue_wait_seconds", Help: "Longest wait of a batch's texts in the queue.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"model"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "embedd_tokens_total", Help: "Tokens run through each model (rate() gives tokens/s).",
		}, []string{"model"}),
		texts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "embedd_texts_total", Help: "Texts run through each model.",
		}, []string{"model"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.batchRows, m.batchPadding, m.batchRun, m.queueWait,
		m.tokens, m.texts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
