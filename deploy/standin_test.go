package deploy

import (
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/embedd/embedd/client"
	"github.com/embedd/embedd/client/clienttest"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// listModelsOK is the metrics line that counts the ListModels calls
// answered.
var listModelsOK = regexp.MustCompile(`(?m)^embedd_requests_total\{code="OK",method="/embedd\.v1\.EmbeddingService/ListModels"\} (\d+)$`)

// listModelsCalls reads how many ListModels calls p has answered.
func listModelsCalls(t *testing.T, p *proc) int {
	t.Helper()
	_, page := p.get(t, "/metrics", "")
	m := listModelsOK.FindStringSubmatch(page)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// callUntil makes ListModels calls through c, in rounds of 20, until done
// says so, failing on any error or after a minute.
func callUntil(t *testing.T, c *client.Client, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute of calls, still not: %s", what)
		}
		for range 20 {
			if _, err := c.ListModels(background); err != nil {
				t.Fatalf("ListModels (waiting for: %s): %v", what, err)
			}
		}
	}
}

// TestDNSRoundRobin stands in for a headless Service: embedd serve on
// 127.0.0.2–4 behind a dns:/// name. The client spreads calls over all
// three; when a fourth pod joins the records, it finds it once the
// servers' max_connection_age has closed the connections (it reads the
// records again then, as with DNS); when a pod is killed, calls go on.
func TestDNSRoundRobin(t *testing.T) {
	age := map[string]any{"max_connection_age": "1s", "max_connection_age_grace": "1s"}
	pods := startServes(t, age, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	dns := clienttest.NewDNS(pods[0].grpc, pods[1].grpc, pods[2].grpc)
	c, err := client.Dial(background, "dns:///embedd-grpc.default.svc:50051", client.WithDialOptions(dns.DialOption()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		dns.Close()
		c.Close()
	}()

	callUntil(t, c, "every pod of three answers", func() bool {
		for _, p := range pods[:3] {
			if listModelsCalls(t, p) == 0 {
				return false
			}
		}
		return true
	})
	if n := listModelsCalls(t, pods[3]); n != 0 {
		t.Fatalf("the fourth pod, not in the records yet, answered %d calls", n)
	}

	dns.Set(pods[0].grpc, pods[1].grpc, pods[2].grpc, pods[3].grpc)
	callUntil(t, c, "the fourth pod answers", func() bool { return listModelsCalls(t, pods[3]) > 0 })
	if dns.Resolves() == 0 {
		t.Errorf("the fourth pod was found without the client reading the records again")
	}

	pods[0].kill()
	before := []int{listModelsCalls(t, pods[1]), listModelsCalls(t, pods[2]), listModelsCalls(t, pods[3])}
	for range 60 {
		if _, err := c.ListModels(background); err != nil {
			t.Fatalf("after a pod was killed: %v", err)
		}
	}
	for i, p := range pods[1:] {
		if listModelsCalls(t, p) == before[i] {
			t.Errorf("pod %d answered none of 60 calls after pod 0 was killed", i+1)
		}
	}
}

// cluster is a collection sharded over three embedd processes and the
// same records in one process holding everything.
type cluster struct {
	shards *client.Shards
	whole  *client.Client
}

// newCluster starts embedd serve on 127.0.0.2–4 (the shards) and on
// 127.0.0.5 (everything), creates the collections (name → metric) on all
// four, and loads the same n random records of dimension dim into each,
// through Shards.Upsert and Upsert.
func newCluster(tb testing.TB, n, dim int, collections map[string]embeddv1.Metric) *cluster {
	tb.Helper()
	cl := &cluster{}
	ps := startServes(tb, nil, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	targets := []string{ps[0].grpc, ps[1].grpc, ps[2].grpc}
	wholeP := ps[3]
	var err error
	if cl.shards, err = client.DialShards(background, targets); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cl.shards.Close() })
	if cl.whole, err = client.Dial(background, wholeP.grpc); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cl.whole.Close() })

	r := rand.New(rand.NewPCG(14, uint64(n)))
	const batch = 10000
	recs := make([]*embeddv1.Record, 0, batch)
	for name, m := range collections {
		create := &embeddv1.CreateCollectionRequest{Name: name, Dimension: uint32(dim), Metric: m}
		for i := range 3 {
			if _, err := cl.shards.Shard(i).CreateCollection(background, create); err != nil {
				tb.Fatal(err)
			}
		}
		if _, err := cl.whole.CreateCollection(background, create); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range n {
		recs = append(recs, &embeddv1.Record{Id: fmt.Sprint("doc-", i), Vector: randomVector(r, dim)})
		if len(recs) == batch || i == n-1 {
			for name := range collections {
				req := &embeddv1.UpsertRequest{Collection: name, Records: recs}
				if got, err := cl.shards.Upsert(background, req); err != nil || got != uint64(len(recs)) {
					tb.Fatalf("sharded Upsert: %d, %v", got, err)
				}
				if _, err := cl.whole.Upsert(background, req); err != nil {
					tb.Fatal(err)
				}
			}
			recs = recs[:0]
		}
	}
	return cl
}

func randomVector(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func vectorQueries(vs ...[]float32) []*embeddv1.Query {
	var qs []*embeddv1.Query
	for _, v := range vs {
		qs = append(qs, &embeddv1.Query{Query: &embeddv1.Query_Vector{Vector: &embeddv1.Embedding{Values: v}}})
	}
	return qs
}

// TestShardedSearchExact: 300,000 vectors over three shard processes
// answer exactly (the same ids, the same scores, the same order) what one
// process holding them all answers, for cosine and L2, for k = 1, 10 and
// 1000, also after deleting the best records of one shard.
func TestShardedSearchExact(t *testing.T) {
	n := 300000
	if testing.Short() {
		n = 30000
	}
	const dim = 16
	collections := map[string]embeddv1.Metric{"cos": embeddv1.Metric_METRIC_COSINE, "l2": embeddv1.Metric_METRIC_L2}
	cl := newCluster(t, n, dim, collections)
	r := rand.New(rand.NewPCG(1, 1))
	var qv [][]float32
	for range 6 {
		qv = append(qv, randomVector(r, dim))
	}
	queries := vectorQueries(qv...)
	for name := range collections {
		for _, k := range []uint32{1, 10, 1000} {
			clienttest.CheckShardedSearch(t, cl.shards, cl.whole, &embeddv1.SearchRequest{Collection: name, Queries: queries, K: k})
		}
		if n := clienttest.DeleteBestOfShard(t, cl.shards, cl.whole, name, queries[0], 1000, 1); n < 200 {
			t.Fatalf("%s: only %d of the best 1000 were on shard 1", name, n)
		}
		for _, k := range []uint32{1, 10, 1000} {
			clienttest.CheckShardedSearch(t, cl.shards, cl.whole, &embeddv1.SearchRequest{Collection: name, Queries: queries, K: k})
		}
	}
}

// BenchmarkShardedSearch compares one k=10 query over three local shard
// processes with the same query to one process holding all the records
// (EMBEDD_BENCH_SHARD_N records of dimension EMBEDD_BENCH_SHARD_DIM;
// default 300,000 × 16).
func BenchmarkShardedSearch(b *testing.B) {
	n, dim := envInt(b, "EMBEDD_BENCH_SHARD_N", 300000), envInt(b, "EMBEDD_BENCH_SHARD_DIM", 16)
	cl := newCluster(b, n, dim, map[string]embeddv1.Metric{"docs": embeddv1.Metric_METRIC_COSINE})
	r := rand.New(rand.NewPCG(2, 2))
	req := &embeddv1.SearchRequest{Collection: "docs", Queries: vectorQueries(randomVector(r, dim)), K: 10}
	b.Run("one-process", func(b *testing.B) {
		for b.Loop() {
			if _, err := cl.whole.Search(background, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("3-shards", func(b *testing.B) {
		for b.Loop() {
			if _, err := cl.shards.Search(background, req, client.ShardedSearchOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// envInt reads a positive integer from the environment, or def.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q is not a positive integer", name, v)
	}
	return n
}
