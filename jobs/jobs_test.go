package jobs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeInput writes n text lines, every 97th one failing in the fake
// stage and every 211th empty, and returns its path.
func writeInput(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		switch {
		case i%211 == 5:
			b.WriteString("\n")
		case i%97 == 3:
			fmt.Fprintf(&b, "FAIL %d\n", i)
		default:
			fmt.Fprintf(&b, "text number %d with some words\n", i)
		}
	}
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reference runs job j without a job directory into dir/ref.<ext> and
// returns the output's path.
func reference(t *testing.T, in string, out Output) string {
	t.Helper()
	if _, err := Run(context.Background(), Job{Kind: "embed", Input: Input{Path: in}, Stage: fakeStage(0, nil), Output: out, PartSize: 64}); err != nil {
		t.Fatal(err)
	}
	return out.Path
}

// TestKillResumeIsByteIdentical kills a job process with SIGKILL at
// random moments and reruns it until it finishes: the output and the error
// file are byte-identical to an uninterrupted run's, and no part was
// computed twice beyond those in flight at each kill.
func TestKillResumeIsByteIdentical(t *testing.T) {
	in := writeInput(t, 4000)
	dir := t.TempDir()
	ref := reference(t, in, Output{Path: filepath.Join(dir, "ref.jsonl"), ErrorsPath: filepath.Join(dir, "ref.jsonl.errors")})
	out := filepath.Join(dir, "out.jsonl")
	log := filepath.Join(dir, "parts.log")
	const part, workers = 40, 4 // 100 parts of 5 ms each, 4 at a time: ~125 ms a run
	child := func(jobDir, out string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "EMBEDD_JOBS_CHILD=1", "EMBEDD_JOBS_IN="+in, "EMBEDD_JOBS_OUT="+out,
			"EMBEDD_JOBS_DIR="+jobDir, "EMBEDD_JOBS_LOG="+log, fmt.Sprintf("EMBEDD_JOBS_PART=%d", part))
		return cmd
	}
	// Kill once the child has started 1 to 8 more parts, plus up to 5 ms:
	// mid-part, mid-rename, anywhere in the work.
	kills := killUntilDone(t, func() *exec.Cmd { return child(filepath.Join(dir, "job"), out) }, log, 12, 8, 5*time.Millisecond, nil)
	if kills < 3 {
		t.Fatalf("only %d kills landed before the job finished", kills)
	}
	if !bytes.Equal(readFile(t, out), readFile(t, ref)) {
		t.Fatal("output after kills and resumes differs from the uninterrupted run's")
	}
	if !bytes.Equal(readFile(t, out+".errors"), readFile(t, ref+".errors")) {
		t.Fatal("error file after kills and resumes differs from the uninterrupted run's")
	}
	starts := map[string]int{}
	extra := 0
	for _, l := range strings.Fields(strings.ReplaceAll(string(readFile(t, log)), "line ", "")) {
		starts[l]++
		if starts[l] > 1 {
			extra++
		}
	}
	if len(starts) != 100 {
		t.Fatalf("%d distinct parts started, want 100", len(starts))
	}
	// A kill loses the parts in flight: the 4 in the stage and the ones
	// whose rename had not happened yet.
	if extra > kills*workers {
		t.Fatalf("%d parts computed again after %d kills; at most %d were in flight", extra, kills, kills*workers)
	}
	t.Logf("%d kills, %d parts computed again", kills, extra)
}

// killUntilDone runs the child command newCmd makes until it exits 0,
// killing it with SIGKILL up to maxKills times, each time once log has 1
// to lines more lines plus up to wait; after each kill it calls killed (if
// set) with the log's line count at the start of that round. It returns
// the kills.
func killUntilDone(t *testing.T, newCmd func() *exec.Cmd, log string, maxKills, lines int, wait time.Duration, killed func(start int)) int {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(maxKills), uint64(lines)))
	kills := 0
	for round := 0; ; round++ {
		start := countLines(log)
		cmd := newCmd()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var kill <-chan time.Time
		stop := make(chan struct{})
		if kills < maxKills {
			kill = afterParts(log, 1+rng.IntN(lines), time.Duration(rng.Int64N(int64(wait))), stop)
		}
		select {
		case err := <-exited:
			close(stop)
			if err != nil {
				t.Fatalf("round %d: %v\n%s", round, err, stderr.String())
			}
			return kills
		case <-kill:
			close(stop)
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			kills++
			if killed != nil {
				killed(start)
			}
		}
	}
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte{'\n'})
}

// afterParts fires once log has n more lines than now, and then wait more;
// it gives up when stop is closed.
func afterParts(log string, n int, wait time.Duration, stop <-chan struct{}) <-chan time.Time {
	start := countLines(log)
	fire := make(chan time.Time, 1)
	go func() {
		for countLines(log) < start+n {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		time.Sleep(wait)
		fire <- time.Now()
	}()
	return fire
}

// TestShardsMergeByteIdentical runs n ∈ {1, 3, 7} shards into their own
// job directories and merges them: JSONL, .npy with ids and Parquet
// outputs, and the error file, are byte-identical to one process's.
func TestShardsMergeByteIdentical(t *testing.T) {
	in := writeInput(t, 3000)
	dir := t.TempDir()
	for _, ext := range []string{"jsonl", "npy", "parquet"} {
		ref := reference(t, in, Output{Path: filepath.Join(dir, "ref."+ext), ErrorsPath: filepath.Join(dir, "ref."+ext+".errors")})
		for _, n := range []int{1, 3, 7} {
			var dirs []string
			for i := range n {
				jd := filepath.Join(dir, fmt.Sprintf("%s-%d-%d", ext, n, i))
				// Reversed, so merge has to order them.
				dirs = append([]string{jd}, dirs...)
				_, err := Run(context.Background(), Job{Kind: "embed", Input: Input{Path: in}, Stage: fakeStage(0, nil),
					Output: Output{Path: filepath.Join(jd, "out."+ext), ErrorsPath: filepath.Join(jd, "errors")},
					Dir:    jd, Shard: Shard{i, n}, PartSize: 100})
				if err != nil {
					t.Fatal(err)
				}
			}
			got := filepath.Join(dir, fmt.Sprintf("merged-%d.%s", n, ext))
			tot, err := Merge(dirs, Output{Path: got, ErrorsPath: got + ".errors"})
			if err != nil {
				t.Fatal(err)
			}
			if tot.Read != 3000 || tot.Failed == 0 || tot.Written+tot.Failed != 3000 {
				t.Fatalf("%s n=%d: totals %+v", ext, n, tot)
			}
			for _, suffix := range []string{"", ".errors"} {
				if !bytes.Equal(readFile(t, got+suffix), readFile(t, ref+suffix)) {
					t.Fatalf("%s, %d shards: merged %s differs from one process's", ext, n, got+suffix)
				}
			}
			if ext == "npy" && !bytes.Equal(readFile(t, got+".ids"), readFile(t, ref+".ids")) {
				t.Fatalf("%d shards: merged ids differ", n)
			}
		}
	}
	if _, err := Merge([]string{filepath.Join(dir, "jsonl-3-0"), filepath.Join(dir, "jsonl-3-2")}, Output{Path: filepath.Join(dir, "x")}); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("merge with a shard missing: %v, want ErrIncomplete", err)
	}
}

// TestResumeRefusesAnotherJob: a changed input or parameter is refused,
// naming what differs.
func TestResumeRefusesAnotherJob(t *testing.T) {
	in := writeInput(t, 300)
	jd := filepath.Join(t.TempDir(), "job")
	job := Job{Kind: "embed", Input: Input{Path: in}, Stage: fakeStage(0, nil), Output: Output{Path: filepath.Join(jd, "out.jsonl")}, Dir: jd, Params: map[string]string{"model": "a"}}
	if _, err := Run(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	tot, err := Run(context.Background(), job)
	if err != nil || tot.Resumed != 300 {
		t.Fatalf("rerun of a finished job: %+v, %v; want every record resumed", tot, err)
	}
	job.Params = map[string]string{"model": "b"}
	if _, err := Run(context.Background(), job); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), `--model was "a", now "b"`) {
		t.Fatalf("changed parameter: %v", err)
	}
	job.Params = map[string]string{"model": "a"}
	if err := os.WriteFile(in, append(readFile(t, in), "one more\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), job); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "input size") {
		t.Fatalf("changed input: %v", err)
	}
}

// TestBadInputLines: each kind of bad line is in the error file with its
// line number and reason while the job goes on; MaxErrors stops it.
func TestBadInputLines(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	lines := []string{
		`{"id":"a","text":"fine"}`,
		`{"id":"b","text":`,
		`{"id":"c"}`,
		"{\"id\":\"d\",\"text\":\"bad \xff utf-8\"}",
		`{"id":"e","text":"` + strings.Repeat("x", 300) + `"}`,
		`{"id":"f","text":""}`,
		`{"id":7,"text":"numeric id"}`,
		`{"id":"g","text":42}`,
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl")
	tot, err := Run(context.Background(), Job{Kind: "embed", Input: Input{Path: in, MaxLineBytes: 200}, Stage: fakeStage(0, nil), Output: Output{Path: out, ErrorsPath: out + ".errors"}})
	if err != nil {
		t.Fatal(err)
	}
	if tot.Read != 8 || tot.Written != 2 || tot.Failed != 6 {
		t.Fatalf("totals %+v, want 8 read, 2 written, 6 failed", tot)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(string(readFile(t, out))), "\n") {
		var r struct{ ID string }
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "a,7" {
		t.Fatalf("written ids %v, want a,7", ids)
	}
	want := []string{
		`{"line":2,"id":"2","error":"not a JSON object: unexpected end of JSON input"}`,
		`{"line":3,"id":"c","error":"no \"text\" field"}`,
		`{"line":4,"id":"4","error":"line is not valid UTF-8"}`,
		`{"line":5,"id":"5","error":"line is over 200 bytes"}`,
		`{"line":6,"id":"f","error":"empty text"}`,
		`{"line":8,"id":"g","error":"field \"text\" is not a string"}`,
	}
	if got := strings.TrimSpace(string(readFile(t, out+".errors"))); got != strings.Join(want, "\n") {
		t.Fatalf("error file:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	streamed, streamedErrs := readFile(t, out), readFile(t, out+".errors")
	jd := filepath.Join(dir, "job")
	_, err = Run(context.Background(), Job{Kind: "embed", Input: Input{Path: in, MaxLineBytes: 200}, Stage: fakeStage(0, nil), Output: Output{Path: out}, Dir: jd, PartSize: 2, Workers: 1, MaxErrors: 3})
	if !errors.Is(err, ErrTooManyErrors) {
		t.Fatalf("MaxErrors 3: %v, want ErrTooManyErrors", err)
	}
	if _, err := os.Stat(filepath.Join(jd, "done.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a stopped job wrote done.json")
	}
	tot, err = Run(context.Background(), Job{Kind: "embed", Input: Input{Path: in, MaxLineBytes: 200}, Stage: fakeStage(0, nil), Output: Output{Path: out}, Dir: jd, PartSize: 2, Workers: 1})
	if err != nil || tot.Resumed == 0 || tot.Failed != 6 {
		t.Fatalf("resumed after MaxErrors: %+v, %v", tot, err)
	}
	// Assembled from the job directory's parts, the output and the error
	// file are the streamed run's, byte for byte.
	if !bytes.Equal(readFile(t, out), streamed) || !bytes.Equal(readFile(t, out+".errors"), streamedErrs) {
		t.Fatalf("assembled output differs from the streamed one:\n%s\n%s\nwant\n%s\n%s", readFile(t, out), readFile(t, out+".errors"), streamed, streamedErrs)
	}
}

// TestOpenAIBatchLines: OpenAI Batch API requests are recognised by shape
// and answered with OpenAI's output lines; bad requests go to the error
// file in the same shape.
func TestOpenAIBatchLines(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "batch.jsonl")
	reqs := `{"custom_id":"r1","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"hello"}}
{"custom_id":"r2","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":["a","b"]}}
{"custom_id":"r3","method":"POST","url":"/v1/chat/completions","body":{"model":"m","input":"x"}}
`
	if err := os.WriteFile(in, []byte(reqs), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := DetectInput(in); err != nil || f != InputOpenAI {
		t.Fatalf("detected %q, %v", f, err)
	}
	out := filepath.Join(dir, "out.jsonl")
	if _, err := Run(context.Background(), Job{Kind: "embed", Input: Input{Path: in}, Stage: fakeStage(0, nil), Output: Output{Path: out, Format: OutputOpenAI, ErrorsPath: out + ".errors"}}); err != nil {
		t.Fatal(err)
	}
	type line struct {
		ID       string `json:"id"`
		CustomID string `json:"custom_id"`
		Response struct {
			StatusCode int `json:"status_code"`
			Body       struct {
				Data []struct {
					Index     int       `json:"index"`
					Embedding []float32 `json:"embedding"`
				} `json:"data"`
				Error *struct{ Message string } `json:"error"`
			} `json:"body"`
		} `json:"response"`
	}
	parse := func(b []byte) []line {
		var ls []line
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var x line
			if err := json.Unmarshal([]byte(l), &x); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			ls = append(ls, x)
		}
		return ls
	}
	got := parse(readFile(t, out))
	if len(got) != 2 || got[0].CustomID != "r1" || got[0].ID != "batch_req_1" || got[0].Response.StatusCode != 200 || len(got[1].Response.Body.Data) != 2 || got[1].Response.Body.Data[1].Index != 1 {
		t.Fatalf("output %+v", got)
	}
	if v := got[1].Response.Body.Data[1].Embedding; len(v) != 8 || v[0] != fakeVector("b")[0] {
		t.Fatalf("r2's second embedding %v, want fakeVector(\"b\")", v)
	}
	errs := parse(readFile(t, out+".errors"))
	if len(errs) != 1 || errs[0].CustomID != "r3" || errs[0].Response.StatusCode != 400 || !strings.Contains(errs[0].Response.Body.Error.Message, "/v1/chat/completions") {
		t.Fatalf("errors %+v", errs)
	}
}

// TestOpenAIBatchBase64: a request with encoding_format "base64" gets its
// embeddings as base64 of little-endian float32s, equal to the float
// request's, streamed and through a job directory's parts; an unknown
// format is refused on its line.
func TestOpenAIBatchBase64(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "batch.jsonl")
	reqs := `{"custom_id":"f","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"b"}}
{"custom_id":"b","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":["b","c"],"encoding_format":"base64"}}
{"custom_id":"x","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"b","encoding_format":"hex"}}
`
	if err := os.WriteFile(in, []byte(reqs), 0o644); err != nil {
		t.Fatal(err)
	}
	type line struct {
		CustomID string `json:"custom_id"`
		Response struct {
			Body struct {
				Data []struct {
					Embedding json.RawMessage `json:"embedding"`
				} `json:"data"`
				Error *struct{ Message string } `json:"error"`
			} `json:"body"`
		} `json:"response"`
	}
	decode := func(raw json.RawMessage) []float32 {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("embedding %s is not a base64 string", raw)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b)%4 != 0 {
			t.Fatalf("embedding %q: %v", s, err)
		}
		v := make([]float32, len(b)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v
	}
	for _, jd := range []string{"", filepath.Join(dir, "job")} {
		out := filepath.Join(dir, "out.jsonl")
		if _, err := Run(context.Background(), Job{Kind: "embed", Input: Input{Path: in}, Stage: fakeStage(0, nil), Dir: jd, Output: Output{Path: out, Format: OutputOpenAI, ErrorsPath: out + ".errors"}}); err != nil {
			t.Fatal(err)
		}
		var ls []line
		for _, l := range strings.Split(strings.TrimSpace(string(readFile(t, out))), "\n") {
			var x line
			if err := json.Unmarshal([]byte(l), &x); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			ls = append(ls, x)
		}
		if len(ls) != 2 || ls[0].CustomID != "f" || ls[1].CustomID != "b" || len(ls[1].Response.Body.Data) != 2 {
			t.Fatalf("job dir %q: output %s", jd, readFile(t, out))
		}
		var float []float32
		if err := json.Unmarshal(ls[0].Response.Body.Data[0].Embedding, &float); err != nil {
			t.Fatal(err)
		}
		if got := decode(ls[1].Response.Body.Data[0].Embedding); !slices.Equal(got, float) || !slices.Equal(got, fakeVector("b")) {
			t.Fatalf("job dir %q: base64 embedding %v, float one %v", jd, got, float)
		}
		if got := decode(ls[1].Response.Body.Data[1].Embedding); !slices.Equal(got, fakeVector("c")) {
			t.Fatalf("job dir %q: second base64 embedding %v", jd, got)
		}
		if e := string(readFile(t, out+".errors")); !strings.Contains(e, `"custom_id":"x"`) || !strings.Contains(e, `encoding_format \"hex\" is not float or base64`) {
			t.Fatalf("job dir %q: errors %s", jd, e)
		}
	}
}

// TestPartV1StillRead: a job directory's parts from before the Base64 flag
// (EJP1) are still read, so a job started by the previous release resumes.
func TestPartV1StillRead(t *testing.T) {
	dir := t.TempDir()
	want := []Result{
		{Line: 1, ID: "a", Model: "m", Tokens: 3, Vectors: [][]float32{{0.5, -0.25}}},
		{Line: 2, ID: "b", Err: "empty text"},
		{Line: 3, ID: "c", Neighbors: []Neighbor{{ID: "x", Score: 0.75}}},
	}
	// Part files as the previous release wrote them: no flags field.
	b := []byte(partMagicV1)
	str := func(s string) { b = append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	for _, r := range want {
		b = binary.AppendUvarint(b, uint64(r.Line))
		str(r.ID)
		str(r.Err)
		str(r.Model)
		b = binary.AppendUvarint(b, uint64(r.Tokens))
		b = binary.AppendUvarint(b, uint64(len(r.Vectors)))
		for _, v := range r.Vectors {
			b = binary.AppendUvarint(b, uint64(len(v)))
			for _, x := range v {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
			}
		}
		b = binary.AppendUvarint(b, uint64(len(r.Neighbors)))
		for _, n := range r.Neighbors {
			str(n.ID)
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(n.Score))
		}
	}
	path := filepath.Join(dir, partName(0, len(want)))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var got []Result
	if err := readPart(path, len(want), func(r *Result) error { got = append(got, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v, want %+v", got, want)
	}
	// And this release's parts keep the flag.
	want[0].Base64 = true
	if err := writePart(dir, 1, want); err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := readPart(filepath.Join(dir, partName(1, len(want))), len(want), func(r *Result) error { got = append(got, *r); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v, want %+v", got, want)
	}
}

// TestParquetInput reads texts back from a Parquet file, by row groups
// across shards.
func TestParquetInput(t *testing.T) {
	dir := t.TempDir()
	in := writeInput(t, 20000)
	pq := filepath.Join(dir, "in.parquet")
	// A Parquet of (id, embedding) rows: read its ids back as the texts.
	ref := reference(t, in, Output{Path: pq})
	var all []string
	for i := range 2 {
		out := filepath.Join(dir, fmt.Sprintf("ids-%d.jsonl", i))
		_, err := Run(context.Background(), Job{Kind: "embed", Input: Input{Path: ref, TextField: "id"}, Stage: fakeStage(0, nil), Output: Output{Path: out},
			Dir: filepath.Join(dir, fmt.Sprintf("job-%d", i)), Shard: Shard{i, 2}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, strings.Split(strings.TrimSpace(string(readFile(t, out))), "\n")...)
	}
	n := 0
	for i, l := range all {
		var r struct {
			ID        string
			Embedding []float32
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.Embedding[0] != fakeVector(r.ID)[0] {
			t.Fatalf("row %d: id %s has the wrong vector", i, r.ID)
		}
		n++
	}
	if n < 19000 {
		t.Fatalf("%d rows read back from two shards", n)
	}
}

// TestPartialWritesTheDoneParts: a job stopped part way (cancelled) writes
// with Partial the results of its complete parts, in order: a prefix of
// the uninterrupted run's output.
func TestPartialWritesTheDoneParts(t *testing.T) {
	in := writeInput(t, 1000)
	dir := t.TempDir()
	ref := reference(t, in, Output{Path: filepath.Join(dir, "ref.jsonl"), ErrorsPath: filepath.Join(dir, "ref.errors")})
	ctx, cancel := context.WithCancel(context.Background())
	parts := 0
	stage := fakeStage(0, nil)
	j := Job{Kind: "embed", Input: Input{Path: in}, Dir: filepath.Join(dir, "job"), PartSize: 100, Workers: 1,
		Output: Output{Path: filepath.Join(dir, "out.jsonl"), ErrorsPath: filepath.Join(dir, "out.errors")},
		Stage: func(c context.Context, recs []Record, out []Result) error {
			if parts++; parts == 4 {
				cancel()
				return c.Err()
			}
			return stage(c, recs, out)
		}}
	if _, err := Run(ctx, j); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want it cancelled", err)
	}
	tot, err := Partial(j)
	if err != nil {
		t.Fatal(err)
	}
	if tot.Written+tot.Failed != 300 || tot.Failed == 0 {
		t.Fatalf("partial totals %+v, want the 300 records of 3 parts", tot)
	}
	want := bytes.SplitAfter(readFile(t, ref), []byte("\n"))[:tot.Written]
	if got := readFile(t, j.Output.Path); !bytes.Equal(got, bytes.Join(want, nil)) {
		t.Fatal("the partial output is not the first records of the uninterrupted run's")
	}
}

// TestStaleTempsRemoved: a job starting in its directory removes the
// temporary files killed runs left there an hour ago or more, and keeps
// newer ones (another process may be writing them).
func TestStaleTempsRemoved(t *testing.T) {
	in := writeInput(t, 50)
	jd := filepath.Join(t.TempDir(), "job")
	if err := os.MkdirAll(filepath.Join(jd, "pairs"), 0o755); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(jd, ".part-000003-n10.bin.tmp123"), filepath.Join(jd, ".part-000004-n10.bin.tmp456")
	oldHeaps := filepath.Join(jd, "pairs", ".heaps.bin.tmp789")
	for _, p := range []string{old, fresh, oldHeaps} {
		if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, long, long)
	os.Chtimes(oldHeaps, long, long)
	if _, err := Run(context.Background(), Job{Kind: "embed", Input: Input{Path: in}, Stage: fakeStage(0, nil), Output: Output{Path: filepath.Join(jd, "out.jsonl")}, Dir: jd}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{old: false, oldHeaps: false, fresh: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}
