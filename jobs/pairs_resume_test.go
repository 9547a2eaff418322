package jobs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/index/flat"
)

// writeUnitNPY writes n random unit rows of dimension dim as an .npy with
// an ids file ("r0", "r1", …) and returns both paths.
func writeUnitNPY(t *testing.T, seed uint64, n, dim int) (string, string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 5))
	b := index.AppendNPYHeader(nil, n, dim)
	var ids strings.Builder
	row := make([]float64, dim)
	for i := range n {
		var norm float64
		for j := range row {
			row[j] = rng.NormFloat64()
			norm += row[j] * row[j]
		}
		for _, x := range row {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(x/math.Sqrt(norm))))
		}
		fmt.Fprintf(&ids, "r%d\n", i)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "x.npy")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".ids", []byte(ids.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, path + ".ids"
}

// killPairs is the self-join top k the kill test runs: 100 blocks of 40
// rows of 256 dimensions, a checkpoint after every block.
func killPairs(in, out, dir string) PairsJob {
	return PairsJob{Input: &PairsInput{Input: Input{Path: in, Vectors: true}, IDsPath: in + ".ids"}, Metric: flat.Cosine, K: 10,
		Output: Output{Path: out}, Dir: dir, BlockRows: 40, Workers: 2, CheckpointEvery: time.Nanosecond}
}

// childPairs runs the kill test's join, logging each block it completes.
func childPairs() int {
	log, err := os.OpenFile(os.Getenv("EMBEDD_PAIRS_LOG"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer log.Close()
	p := killPairs(os.Getenv("EMBEDD_PAIRS_IN"), os.Getenv("EMBEDD_PAIRS_OUT"), os.Getenv("EMBEDD_PAIRS_DIR"))
	p.blockDone = func(b int) { fmt.Fprintf(log, "%d\n", b) }
	if _, err := RunPairs(context.Background(), p); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestPairsSelfTopKKillResume kills a self-join top k with SIGKILL at
// random moments and reruns it until it finishes: the output is
// byte-identical to an uninterrupted run's; a resumed run never scores a
// block its checkpoint holds again, so the blocks scored twice are only
// those in flight or completed after the last checkpoint.
func TestPairsSelfTopKKillResume(t *testing.T) {
	in, _ := writeUnitNPY(t, 21, 4000, 256)
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref.jsonl")
	if _, err := RunPairs(context.Background(), killPairs(in, ref, "")); err != nil {
		t.Fatal(err)
	}
	out, jd, log := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "job"), filepath.Join(dir, "blocks.log")
	var o flat.JoinOptions
	o.BlockRows = 40
	nblocks := o.Blocks(4000, 256)
	saved := map[int]bool{} // blocks in the checkpoint left by the last kill
	lost := 0
	// rescored fails if blocks logged from line start on include one the
	// checkpoint held.
	rescored := func(start int) []int {
		done := logLines(t, log)[start:]
		for _, b := range done {
			if saved[b] {
				t.Fatalf("block %d was scored again, though the checkpoint held it", b)
			}
		}
		return done
	}
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "EMBEDD_PAIRS_CHILD=1", "EMBEDD_PAIRS_IN="+in, "EMBEDD_PAIRS_OUT="+out, "EMBEDD_PAIRS_DIR="+jd, "EMBEDD_PAIRS_LOG="+log)
		return cmd
	}
	last := 0
	kills := killUntilDone(t, child, log, 10, 10, 3*time.Millisecond, func(start int) {
		done := rescored(start)
		st, err := readHeaps(filepath.Join(jd, "pairs", "heaps.bin"), nblocks, 4000, 10)
		if err != nil {
			t.Fatal(err)
		}
		saved = map[int]bool{}
		for b := 0; st != nil && b < nblocks; b++ {
			saved[b] = st.Done[b]
		}
		for _, b := range done {
			if !saved[b] {
				lost++
			}
		}
		last = len(logLines(t, log))
	})
	rescored(last) // the run that finished
	if kills < 3 {
		t.Fatalf("only %d kills landed before the join finished", kills)
	}
	if !bytes.Equal(readFile(t, out), readFile(t, ref)) {
		t.Fatal("output after kills and resumes differs from the uninterrupted run's")
	}
	all := logLines(t, log)
	distinct := map[int]bool{}
	for _, b := range all {
		distinct[b] = true
	}
	if len(distinct) != nblocks || len(all) != nblocks+lost {
		t.Fatalf("%d blocks scored (%d distinct of %d), %d completed after the last checkpoint of a kill", len(all), len(distinct), nblocks, lost)
	}
	t.Logf("%d kills; %d blocks completed but not yet checkpointed were scored again (plus those in flight)", kills, lost)
}

// logLines are the block numbers in log.
func logLines(t *testing.T, log string) []int {
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var bs []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, n)
	}
	return bs
}

// TestPairsShardsMergeByteIdentical runs every kind of pairs job as n ∈
// {1, 3, 7} shards and merges them: byte-identical to one process's output.
func TestPairsShardsMergeByteIdentical(t *testing.T) {
	npy, ids := writeUnitNPY(t, 23, 700, 24)
	jsonl, _ := writeVectors(t, 24, 500, 24)
	other, _ := writeUnitNPY(t, 25, 300, 24)
	dir := t.TempDir()
	kinds := []struct {
		name string
		job  PairsJob
	}{
		{"self-topk-npy", PairsJob{Input: &PairsInput{Input: Input{Path: npy, Vectors: true}, IDsPath: ids}, K: 5}},
		{"self-topk-jsonl", PairsJob{Input: vectorInput(jsonl), K: 5}},
		{"threshold", PairsJob{Input: &PairsInput{Input: Input{Path: npy, Vectors: true}, IDsPath: ids}, Threshold: 0.3}},
		{"capped", PairsJob{Input: vectorInput(jsonl), Threshold: 0.2, MaxPairs: 150}},
		{"dedup", PairsJob{Input: vectorInput(jsonl), Threshold: 0.45, Dedup: true}},
		{"against-topk", PairsJob{Input: vectorInput(jsonl), Against: &PairsInput{Input: Input{Path: other, Vectors: true}}, K: 3}},
		{"against-threshold", PairsJob{Input: &PairsInput{Input: Input{Path: npy, Vectors: true}, IDsPath: ids}, Against: &PairsInput{Input: Input{Path: other, Vectors: true}}, Threshold: 0.4}},
	}
	for _, kind := range kinds {
		job := kind.job
		job.Metric, job.BlockRows, job.Workers = flat.Cosine, 32, 2
		ref := job
		ref.Output = Output{Path: filepath.Join(dir, kind.name+".jsonl")}
		want, err := RunPairs(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if kind.name == "capped" && !want.Capped {
			t.Fatal("the capped job was not capped")
		}
		for _, n := range []int{1, 3, 7} {
			var dirs []string
			for i := range n {
				sh := job
				sh.Dir, sh.Shard = filepath.Join(dir, fmt.Sprintf("%s-%d-%d", kind.name, n, i)), Shard{i, n}
				if n == 1 {
					sh.Output = Output{Path: filepath.Join(sh.Dir, "out.jsonl")}
				}
				if _, err := RunPairs(context.Background(), sh); err != nil {
					t.Fatalf("%s shard %d/%d: %v", kind.name, i, n, err)
				}
				dirs = append([]string{sh.Dir}, dirs...) // reversed: merge orders them
			}
			got := filepath.Join(dir, fmt.Sprintf("%s-merged-%d.jsonl", kind.name, n))
			tot, err := Merge(dirs, Output{Path: got})
			if err != nil {
				t.Fatalf("%s, %d shards: %v", kind.name, n, err)
			}
			if !bytes.Equal(readFile(t, got), readFile(t, ref.Output.Path)) {
				t.Fatalf("%s, %d shards: the merged output differs from one process's", kind.name, n)
			}
			if tot.Capped != want.Capped || tot.Written != want.Written {
				t.Fatalf("%s, %d shards: merged totals %+v, one process %+v", kind.name, n, tot, want.Totals)
			}
		}
	}
	// A shard missing, or one not finished, is refused.
	if _, err := Merge([]string{filepath.Join(dir, "threshold-3-0"), filepath.Join(dir, "threshold-3-2")}, Output{Path: filepath.Join(dir, "x")}); err == nil || !strings.Contains(err.Error(), "shard 1/3 is missing") {
		t.Fatalf("merge with a shard missing: %v", err)
	}
	os.Remove(filepath.Join(dir, "self-topk-npy-3-1", "pairs", "heaps.bin"))
	if _, err := Merge([]string{filepath.Join(dir, "self-topk-npy-3-0"), filepath.Join(dir, "self-topk-npy-3-1"), filepath.Join(dir, "self-topk-npy-3-2")}, Output{Path: filepath.Join(dir, "x")}); err == nil || !strings.Contains(err.Error(), "heaps.bin") {
		t.Fatalf("merge with a shard's heaps gone: %v", err)
	}
	// Texts cannot be sharded (every shard would embed everything).
	if _, err := RunPairs(context.Background(), PairsJob{Input: &PairsInput{Input: Input{Path: jsonl}}, K: 2, Metric: flat.Cosine, Dir: filepath.Join(dir, "t"), Shard: Shard{0, 2}}); err == nil || !strings.Contains(err.Error(), "embed texts once") {
		t.Fatalf("a sharded pairs job over texts: %v", err)
	}
}

// TestPairsDamagedCheckpointIsRefused: a checkpoint whose bytes changed
// stops the rerun with a message naming the file, not a wrong answer.
func TestPairsDamagedCheckpointIsRefused(t *testing.T) {
	in, _ := writeUnitNPY(t, 26, 300, 16)
	jd := filepath.Join(t.TempDir(), "job")
	p := killPairs(in, filepath.Join(jd, "out.jsonl"), jd)
	if _, err := RunPairs(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(jd, "pairs", "heaps.bin")
	b := readFile(t, state)
	b[len(b)/2] ^= 1
	os.WriteFile(state, b, 0o644)
	if _, err := RunPairs(context.Background(), p); err == nil || !strings.Contains(err.Error(), "heaps.bin is damaged (checksum)") {
		t.Fatalf("rerun over a damaged checkpoint: %v", err)
	}
}
