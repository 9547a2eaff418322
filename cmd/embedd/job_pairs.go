package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/embedd/embedd/index/flat"
	"github.com/embedd/embedd/jobs"
)

// jobPairsCmd runs "embedd job pairs" and, with dedup, "embedd job dedup".
func jobPairsCmd(args []string, stdout, stderr io.Writer, dedup bool) int {
	name, about := "pairs", "Finds similar pairs over the vectors (or, with --texts, the embedded texts)\nof INPUT: within it (--self; each pair once, never a line with itself) or\nagainst a second set (--against). With --k: {\"id\",\"neighbors\"} lines, each\nline's k best partners; with --threshold: {\"a\",\"b\",\"score\"} lines, every\npair scoring at least the threshold, in input order of a, then b.\nWith --shard (or --shards), each process takes a share of the join and\nembedd job merge writes the output of all the shards' job directories.\n"
	if dedup {
		name, about = "dedup", "Groups the near duplicates of INPUT: the connected components of the pairs\nscoring at least --threshold, one {\"keep\",\"duplicates\"} line per group of\ntwo or more, keeping the group's first line, in input order.\n"
	}
	f := newJobFlags(name, about, stderr)
	var mf modelFlags
	mf.register(f.fs)
	var eo embedOptions
	eo.register(f.fs)
	fs := f.fs
	self := fs.Bool("self", false, "pair INPUT with itself")
	against := fs.String("against", "", "pair INPUT with the items of this `file`")
	ids := fs.String("ids", "", "ids `file` of an .npy INPUT, one a line (default: row numbers from 1)")
	againstIDs := fs.String("against-ids", "", "ids `file` of an .npy --against")
	k := fs.Int("k", 0, "each item's `k` best partners (default 10 without --threshold)")
	threshold := fs.String("threshold", "", "every pair scoring at least this (cosine or dot)")
	maxPairs := fs.Int64("max-pairs", 10_000_000, "write at most `n` threshold pairs (0: no cap); the totals say when it was hit")
	metric := fs.String("metric", "cosine", "cosine (vectors are normalised) or dot")
	texts := fs.Bool("texts", false, "INPUT holds texts (lines, or --text-field), embedded first")
	collection := fs.String("collection", "", "pair the vectors of this collection `name` instead of an INPUT file (read-only: a server may keep running)")
	againstCollection := fs.String("against-collection", "", "pair with the vectors of this collection `name`")
	checkpoint := fs.Duration("checkpoint-every", 0, "with --self --k and --job-dir: the least time between saves of every row's best partners (0: paced to about 5% of the join)")
	dataDir := dataDirFlag(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	outGiven := false
	fs.Visit(func(fl *flag.Flag) { outGiven = outGiven || fl.Name == "out" })
	j, err := f.job(name, nil, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "embedd job %s: %v\n", name, err)
		return 2
	}
	p := jobs.PairsJob{Dir: j.Dir, Output: j.Output, Workers: 0, Progress: j.Progress, MaxPairs: *maxPairs, Dedup: dedup, K: *k, Params: j.Params,
		Shard: j.Shard, CheckpointEvery: *checkpoint}
	if p.Metric, err = flat.ParseMetric(*metric); err == nil && p.Metric == flat.L2 {
		err = errors.New("--metric l2 is not supported by pairs; use cosine or dot")
	}
	if err == nil && *threshold != "" {
		var t float64
		t, err = strconv.ParseFloat(*threshold, 32)
		p.Threshold = float32(t)
		if err == nil && (math.IsNaN(t) || p.K > 0) {
			err = errors.New("--threshold is a number, and not with --k")
		}
	}
	switch {
	case err != nil:
	case *collection != "" && fs.NArg() > 0:
		err = errors.New("give an INPUT file or --collection, not both")
	case *against != "" && *againstCollection != "":
		err = errors.New("give --against FILE or --against-collection, not both")
	case *self == (*against != "" || *againstCollection != ""):
		err = errors.New("give --self or --against FILE")
	case dedup && !*self:
		err = errors.New("dedup is within one set: give --self")
	case dedup && *threshold == "":
		err = errors.New("dedup needs --threshold")
	case j.Shard.Count > 1 && outGiven:
		err = errors.New("a pairs shard writes no --out: its share stays in --job-dir, and embedd job merge writes the output")
	case j.Shard.Count > 1 && *texts:
		err = errors.New("a pairs shard reads vectors, not --texts (every shard needs every vector): embed the texts first, sharded, with embedd job embed --format npy and merge, then pair the .npy")
	case *threshold == "" && p.K == 0:
		p.K = 10
	}
	if err != nil {
		fmt.Fprintf(stderr, "embedd job %s: %v\n", name, err)
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	// A collection is exported (one read-only snapshot) beside the job's
	// other files and read as JSONL vectors.
	exportDir := j.Dir
	if exportDir == "" && (*collection != "" || *againstCollection != "") {
		if exportDir, err = os.MkdirTemp("", "embedd-pairs-export-*"); err != nil {
			fmt.Fprintf(stderr, "embedd job %s: %v\n", name, err)
			return 1
		}
		defer os.RemoveAll(exportDir)
	}
	export := func(col, file string) string {
		if err != nil || col == "" {
			return file
		}
		file = filepath.Join(exportDir, "collection-"+col+".jsonl")
		if err = os.MkdirAll(exportDir, 0o755); err == nil {
			err = jobs.ExportCollection(ctx, dataDirOr(*dataDir), col, file)
		}
		return file
	}
	j.Input.Path = export(*collection, j.Input.Path)
	*against = export(*againstCollection, *against)
	if err != nil {
		fmt.Fprintf(stderr, "embedd job %s: %v\n", name, err)
		return 1
	}
	if *collection != "" || *againstCollection != "" {
		*texts = false
	}
	in := j.Input
	in.Vectors = !*texts
	p.Input = &jobs.PairsInput{Input: in, IDsPath: *ids}
	if *against != "" {
		b := in
		b.Path = *against
		p.Against = &jobs.PairsInput{Input: b, IDsPath: *againstIDs}
	}
	if *texts {
		opts, err := eo.options()
		if err != nil {
			fmt.Fprintf(stderr, "embedd job %s: %v\n", name, err)
			return 2
		}
		eo.params(p.Params, mf.model)
		c, err := mf.openCore(stderr, -1)
		if err != nil {
			fmt.Fprintf(stderr, "embedd job %s: %v\n", name, err)
			return 1
		}
		defer c.Close()
		p.Embed = jobs.EmbedStage(c, jobs.EmbedOptions{Model: mf.model, Options: opts})
	}
	tot, err := jobs.RunPairs(ctx, p)
	what := "pairs"
	if dedup {
		what = "groups"
	}
	if p.K > 0 {
		what = "neighbours"
	}
	if j.Shard.Count > 1 {
		fmt.Fprintf(stderr, "embedd job %s: shard %s of %d×%d rows, join %.2f s, %d checkpoints; embedd job merge writes the output of all the shards' job directories\n", name, j.Shard, tot.RowsA, max(tot.RowsB, tot.RowsA), tot.JoinSeconds, tot.Checkpoints)
	} else {
		fmt.Fprintf(stderr, "embedd job %s: %d×%d rows, %d %s, join %.2f s, %d checkpoints\n", name, tot.RowsA, max(tot.RowsB, tot.RowsA), tot.Pairs, what, tot.JoinSeconds, tot.Checkpoints)
	}
	if tot.Capped {
		fmt.Fprintf(stderr, "embedd job %s: the pairs were capped (--max-pairs %d): lower the threshold's reach or raise the cap\n", name, *maxPairs)
	}
	return finishJob(name, tot.Totals, err, stderr)
}
