package index

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Opening a collection maps the matrix; it does not read it. The parent
// builds a collection (50k×384 by default; 1M×384, a 1.5 GB matrix, with
// EMBEDD_INDEX_BIG=1), then a fresh process (this binary with rssEnv set)
// opens it and reports its resident memory before and after, and after one
// search that touches every row.

const rssEnv = "EMBEDD_INDEX_RSS_HELPER"

type rssReport struct {
	OpenMS            float64 `json:"open_ms"`
	RSSBeforeKB       int64   `json:"rss_before_kb"`
	FileBeforeKB      int64   `json:"rss_file_before_kb"`
	RSSAfterKB        int64   `json:"rss_after_kb"`
	FileAfterKB       int64   `json:"rss_file_after_kb"`
	AnonAfterKB       int64   `json:"rss_anon_after_kb"`
	RSSAfterSearchKB  int64   `json:"rss_after_search_kb"`
	FileAfterSearchKB int64   `json:"rss_file_after_search_kb"`
	SearchMS          float64 `json:"search_ms"`
	Rows              int     `json:"rows"`
}

// procStatus reads VmRSS, RssFile and RssAnon (kB) of this process.
func procStatus(t testing.TB) (rss, file, anon int64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n
		case "RssFile:":
			file = n
		case "RssAnon:":
			anon = n
		}
	}
	return rss, file, anon
}

func TestRSSHelper(t *testing.T) {
	dir := os.Getenv(rssEnv)
	if dir == "" {
		t.Skip("helper process of TestOpenMapsMatrixWithoutReadingIt")
	}
	var r rssReport
	r.RSSBeforeKB, r.FileBeforeKB, _ = procStatus(t)
	start := time.Now()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r.OpenMS = float64(time.Since(start).Microseconds()) / 1000
	r.RSSAfterKB, r.FileAfterKB, r.AnonAfterKB = procStatus(t)
	r.Rows = c.Stats().Rows
	start = time.Now()
	if _, err := c.Search(context.Background(), [][]float32{testVec(c.Dim(), 1)}, 10, SearchOptions{}); err != nil {
		t.Fatal(err)
	}
	r.SearchMS = float64(time.Since(start).Microseconds()) / 1000
	r.RSSAfterSearchKB, r.FileAfterSearchKB, _ = procStatus(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(r)
	fmt.Printf("RSSREPORT %s\n", out)
}

func TestOpenMapsMatrixWithoutReadingIt(t *testing.T) {
	rows, dim := 50000, 384
	if os.Getenv("EMBEDD_INDEX_BIG") != "" {
		rows = 1000000
	}
	dir := t.TempDir()
	c, err := Create(dir, Spec{Dim: dim, Metric: Dot})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	const batchRows = 1000
	recs := make([]Record, batchRows)
	vecs := make([]float32, batchRows*dim)
	for base := 0; base < rows; base += batchRows {
		n := min(batchRows, rows-base)
		for i := range n {
			v := vecs[i*dim : (i+1)*dim]
			for j := range v {
				v[j] = rng.Float32()*2 - 1
			}
			recs[i] = Record{ID: "doc-" + strconv.Itoa(base+i), Vector: v}
		}
		if err := c.Upsert(context.Background(), recs[:n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	build := time.Since(start)
	fileKB := int64(rows) * int64(dim) * 4 / 1024

	cmd := exec.Command(os.Args[0], "-test.run=^TestRSSHelper$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), rssEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	_, js, ok := strings.Cut(string(out), "RSSREPORT ")
	if !ok {
		t.Fatalf("helper printed no report:\n%s", out)
	}
	js, _, _ = strings.Cut(js, "\n")
	var r rssReport
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d×%d (matrix %d MB, built in %v): open %.1f ms; RSS %d → %d kB (file-backed %d → %d kB, anon %d kB); after one full search (%.0f ms) RSS %d kB, file-backed %d kB",
		rows, dim, fileKB/1024, build.Round(time.Millisecond), r.OpenMS, r.RSSBeforeKB, r.RSSAfterKB, r.FileBeforeKB, r.FileAfterKB, r.AnonAfterKB, r.SearchMS, r.RSSAfterSearchKB, r.FileAfterSearchKB)
	if r.Rows != rows {
		t.Fatalf("helper saw %d rows, want %d", r.Rows, rows)
	}
	if grew := r.RSSAfterKB - r.RSSBeforeKB; grew > fileKB/4 && !raceEnabled { // the race detector's shadow memory inflates the heap
		t.Errorf("opening grew RSS by %d kB for a %d kB matrix: it was read, not mapped", grew, fileKB)
	}
	if grew := r.FileAfterKB - r.FileBeforeKB; grew > fileKB/20 {
		t.Errorf("%d kB more of files are resident right after opening a %d kB matrix", grew, fileKB)
	}
	if r.FileAfterSearchKB < fileKB/2 {
		t.Errorf("after a full search only %d kB of files are resident for a %d kB matrix: is search reading the mapping?", r.FileAfterSearchKB, fileKB)
	}
}
