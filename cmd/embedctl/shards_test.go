package main

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/embedd/embedd/client"
	"github.com/embedd/embedd/client/clienttest"
)

// TestShards: upsert --shards puts each record on the shard ShardOf
// names; get, delete and search --shards find them there; search over
// the shards answers what one server holding everything answers; a shard
// that does not answer fails the search unless --partial.
func TestShards(t *testing.T) {
	var servers []*clienttest.Server
	var targets []string
	for range 3 {
		s := clienttest.Start(t, clienttest.Config{Dims: 2})
		servers = append(servers, s)
		targets = append(targets, s.Addr())
		embedctl(t, s, "", "collections", "create", "docs", "--dim", "2", "--metric", "l2").want(t, 0)
	}
	whole := clienttest.Start(t, clienttest.Config{Dims: 2})
	embedctl(t, whole, "", "collections", "create", "docs", "--dim", "2", "--metric", "l2").want(t, 0)
	list := strings.Join(targets, ",")

	var records strings.Builder
	for i := range 60 {
		fmt.Fprintf(&records, `{"id":"r%d","vector":[%d,%d]}`+"\n", i, i%7, i%11)
	}
	r := embedctl(t, whole, records.String(), "upsert", "--shards", list, "docs").want(t, 0)
	if r.stdout != `{"upserted":60}`+"\n" {
		t.Errorf("upsert --shards: %q", r.stdout)
	}
	embedctl(t, whole, records.String(), "upsert", "docs").want(t, 0)
	for i := range 60 {
		id := fmt.Sprint("r", i)
		for j, s := range servers {
			code := embedctl(t, s, "", "get", "docs", id).code
			if on := client.ShardOf(id, 3) == j; on != (code == 0) {
				t.Fatalf("record %s: get on shard %d exits %d; ShardOf says shard %d", id, j, code, client.ShardOf(id, 3))
			}
		}
	}
	r = embedctl(t, whole, "", "get", "--shards", list, "docs", "r5", "nope", "r17").want(t, 1)
	if got := jsonLines[recordJSON](t, r.stdout); len(got) != 2 || got[0].ID != "r5" || got[1].ID != "r17" {
		t.Errorf("get --shards: %s", r.stdout)
	}

	search := func(args ...string) string {
		t.Helper()
		return embedctl(t, whole, "", append([]string{"search", "docs", "--vector", "[3,4]", "--k", "25"}, args...)...).want(t, 0).stdout
	}
	if got, want := search("--shards", list), search(); got != want {
		t.Errorf("search --shards:\n%s\none server:\n%s", got, want)
	}
	r = embedctl(t, whole, "", "delete", "--shards", list, "docs", "r3", "r4", "nope").want(t, 0)
	if r.stdout != `{"deleted":2}`+"\n" {
		t.Errorf("delete --shards: %q", r.stdout)
	}
	embedctl(t, whole, "", "delete", "docs", "r3", "r4").want(t, 0)
	if got, want := search("--shards", list), search(); got != want {
		t.Errorf("after deletes, search --shards:\n%s\none server:\n%s", got, want)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	withDead := list + "," + dead
	r = embedctl(t, whole, "", "search", "--shards", withDead, "docs", "--vector", "[3,4]").want(t, 1)
	if !strings.Contains(r.stderr, "embedctl search: shard 3 ("+dead+"): ") || !strings.Contains(r.stderr, "UNAVAILABLE") {
		t.Errorf("search with a dead shard: stderr %q", r.stderr)
	}
	r = embedctl(t, whole, "", "search", "--shards", withDead, "--partial", "docs", "--vector", "[3,4]").want(t, 0)
	if !strings.Contains(r.stderr, "partial results: shard 3 ("+dead+") did not answer") || len(jsonLines[hitJSON](t, r.stdout)) != 10 {
		t.Errorf("search --partial: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	embedctl(t, whole, "", "search", "--partial", "docs", "--vector", "[3,4]").want(t, 2)
	embedctl(t, whole, "", "search", "--shards", list+",", "docs", "--vector", "[3,4]").want(t, 2)
}

// TestDNSTarget: --addr takes a dns:/// target (balanced round-robin over
// the name's addresses by the client).
func TestDNSTarget(t *testing.T) {
	s := clienttest.Start(t, clienttest.Config{Dims: 2})
	var out, errOut strings.Builder
	if code := run([]string{"--addr", "dns:///" + s.Addr(), "--timeout", "10s", "models", "--json"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("models over dns:///: exit %d, %s", code, errOut.String())
	}
	if n := s.Calls("ListModels"); n != 1 {
		t.Errorf("%d ListModels calls reached the server, want 1", n)
	}
}
