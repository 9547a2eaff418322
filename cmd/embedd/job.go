package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/embedd/embedd/core"
	"github.com/embedd/embedd/index"
	"github.com/embedd/embedd/index/flat"
	"github.com/embedd/embedd/jobs"
	"github.com/embedd/embedd/models"
)

const jobUsage = `usage: embedd job <embed|search|pairs|dedup|merge> [flags] INPUT

  embed   texts (lines, JSONL, Parquet, OpenAI Batch API requests) → vectors
          (JSONL, .npy + ids, Parquet, OpenAI Batch API output)
  search  each line (a text or a vector) → its top k in a collection
  pairs   vectors or texts → top k per item, or every pair over --threshold,
          within one set (--self) or against a second (--against)
  dedup   groups of near duplicates (connected components over --threshold)
  merge   join the job directories of a sharded job into one output

INPUT is a file or - (stdin); --out is a file or - (stdout).
Exit status: 0 done, 3 done with failed lines (see --errors), 1 stopped
(rerun the same command with the same --job-dir to resume), 2 bad usage.
`

// jobCmd dispatches "embedd job ...".
func jobCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, jobUsage)
		return 2
	}
	switch args[0] {
	case "embed":
		return jobEmbedCmd(args[1:], stdin, stdout, stderr)
	case "search":
		return jobSearchCmd(args[1:], stdin, stdout, stderr)
	case "pairs":
		return jobPairsCmd(args[1:], stdout, stderr, false)
	case "dedup":
		return jobPairsCmd(args[1:], stdout, stderr, true)
	case "merge":
		return jobMergeCmd(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, jobUsage)
		return 0
	}
	fmt.Fprintf(stderr, "embedd job: unknown command %q\n%s", args[0], jobUsage)
	return 2
}

// jobFlags are the flags every job shares: input, output, job directory,
// shard, errors and progress.
type jobFlags struct {
	name                            string
	fs                              *flag.FlagSet
	out, format, inFormat, errs     string
	idField, textField, vectorField string
	jobDir, shard                   string
	shards, partSize, workers       int
	maxErrors                       int64
	progress                        string
}

func newJobFlags(name, usage string, stderr io.Writer) *jobFlags {
	f := &jobFlags{name: name, fs: flag.NewFlagSet("job "+name, flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(stderr)
	fs.StringVar(&f.out, "out", "-", "output `file`, or - for stdout")
	fs.StringVar(&f.format, "format", "auto", "output format: auto (by --out's extension), jsonl, npy, parquet, openai")
	fs.StringVar(&f.inFormat, "input-format", "auto", "input format: auto, text, jsonl, openai, parquet")
	fs.StringVar(&f.errs, "errors", "", "error `file`: one JSON line per failed input line (default: --out + .errors.jsonl, or stderr for stdout)")
	fs.StringVar(&f.idField, "id-field", "id", "JSONL field (Parquet column) of the ids")
	fs.StringVar(&f.textField, "text-field", "text", "JSONL field (Parquet column) of the texts")
	fs.StringVar(&f.vectorField, "vector-field", "vector", "JSONL field (Parquet column) of the vectors")
	fs.StringVar(&f.jobDir, "job-dir", "", "job `dir`: manifest and part files; rerunning resumes (needs a file INPUT)")
	fs.StringVar(&f.shard, "shard", "", "run shard `i/n` of the input (with --job-dir; join with embedd job merge)")
	fs.IntVar(&f.shards, "shards", 0, "`n` shards, this one JOB_COMPLETION_INDEX (a Kubernetes Indexed Job)")
	fs.IntVar(&f.partSize, "part-size", 1024, "input lines per part file")
	fs.IntVar(&f.workers, "workers", 4, "parts in flight at once")
	fs.Int64Var(&f.maxErrors, "max-errors", 0, "stop after `n` failed lines (0: never)")
	fs.StringVar(&f.progress, "progress", "auto", "progress on stderr: auto (a bar on a terminal, else log lines), bar, log, off")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: embedd job %s [flags] INPUT\n\n%s\nflags:\n", name, usage)
		fs.PrintDefaults()
	}
	return f
}

// input is the positional INPUT, "-" when absent.
func (f *jobFlags) input() string {
	if f.fs.NArg() > 0 {
		return f.fs.Arg(0)
	}
	return "-"
}

// job fills the parts of a Job the flags say.
func (f *jobFlags) job(kind string, stdin io.Reader, stdout, stderr io.Writer) (jobs.Job, error) {
	j := jobs.Job{Kind: kind, Dir: f.jobDir, PartSize: f.partSize, Workers: f.workers, MaxErrors: f.maxErrors}
	inf, err := jobs.ParseInputFormat(f.inFormat)
	if err != nil {
		return j, err
	}
	outf, err := jobs.ParseOutputFormat(f.format)
	if err != nil {
		return j, err
	}
	if fs := f.fs; fs.NArg() > 1 {
		return j, fmt.Errorf("one INPUT, got %d arguments", fs.NArg())
	}
	j.Input = jobs.Input{Path: f.input(), Stdin: stdin, Format: inf, IDField: f.idField, TextField: f.textField, VectorField: f.vectorField}
	j.Output = jobs.Output{Path: f.out, Stdout: stdout, Format: outf, ErrorsPath: f.errs, Stderr: stderr}
	if f.errs == "" && f.out != "-" {
		j.Output.ErrorsPath = f.out + ".errors.jsonl"
	}
	switch {
	case f.shard != "" && f.shards != 0:
		return j, errors.New("give --shard i/n or --shards n, not both")
	case f.shard != "":
		if j.Shard, err = jobs.ParseShard(f.shard); err != nil {
			return j, err
		}
	case f.shards != 0:
		idx := os.Getenv("JOB_COMPLETION_INDEX")
		i, err := strconv.Atoi(idx)
		if err != nil {
			return j, fmt.Errorf("--shards needs JOB_COMPLETION_INDEX set to the shard's index (it is %q)", idx)
		}
		j.Shard = jobs.Shard{Index: i, Count: f.shards}
	}
	if j.Shard.Count > 1 && j.Dir == "" {
		return j, errors.New("a shard needs --job-dir (embedd job merge joins the shards' job directories)")
	}
	j.Params = map[string]string{
		"input-format": f.inFormat, "id-field": f.idField, "text-field": f.textField, "vector-field": f.vectorField,
	}
	j.Progress, j.ProgressEvery = progressReporter(f.progress, kind, stderr)
	return j, nil
}

// progressReporter is a bar on a terminal (or with "bar"), structured log
// lines every 10 s otherwise (or with "log"), or nothing ("off").
func progressReporter(mode, kind string, stderr io.Writer) (func(jobs.Progress), time.Duration) {
	if mode == "auto" {
		mode = "log"
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	switch mode {
	case "bar":
		var bar *progressbar.ProgressBar
		return func(p jobs.Progress) {
			if bar == nil {
				bar = progressbar.NewOptions64(max(p.TotalBytes, -1), progressbar.OptionSetWriter(stderr),
					progressbar.OptionShowBytes(true), progressbar.OptionSetPredictTime(true),
					progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionClearOnFinish(),
					progressbar.OptionThrottle(200*time.Millisecond))
			}
			bar.Describe(fmt.Sprintf("%s: %d lines done, %d failed, %.0f/s", kind, p.Done, p.Failed, float64(p.Done)/max(p.Elapsed.Seconds(), 1e-3)))
			bar.Set64(p.Bytes)
			if p.Final {
				bar.Finish()
				bar = nil // the next stage (pairs: conversion, then the join) gets its own
			}
		}, 200 * time.Millisecond
	case "log":
		log := slog.New(slog.NewTextHandler(stderr, nil))
		return func(p jobs.Progress) {
			rate := float64(p.Done) / max(p.Elapsed.Seconds(), 1e-3)
			attrs := []any{"job", kind, "read", p.Read, "done", p.Done, "failed", p.Failed, "per_second", int64(rate), "elapsed", p.Elapsed.Round(time.Second).String()}
			if p.TotalBytes > 0 && p.Bytes > 0 {
				eta := time.Duration(float64(p.Elapsed) * float64(p.TotalBytes-p.Bytes) / float64(p.Bytes))
				attrs = append(attrs, "input_done", fmt.Sprintf("%.1f%%", 100*float64(p.Bytes)/float64(p.TotalBytes)), "eta", eta.Round(time.Second).String())
			}
			log.Info("progress", attrs...)
		}, 10 * time.Second
	}
	return nil, 0
}

// finishJob prints the totals and maps the outcome to the exit status.
func finishJob(name string, tot jobs.Totals, err error, stderr io.Writer) int {
	fmt.Fprintf(stderr, "embedd job %s: read %d, written %d, failed %d, resumed %d, %.1f s\n", name, tot.Read, tot.Written, tot.Failed, tot.Resumed, tot.Seconds)
	switch {
	case err != nil:
		msg := err.Error()
		if errors.Is(err, context.Canceled) {
			msg = "interrupted"
		}
		fmt.Fprintf(stderr, "embedd job %s: %s\n", name, msg)
		return 1
	case tot.Failed > 0:
		return 3
	}
	return 0
}

// signalContext ends at SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// embedOptions are the flags of a command that embeds texts (embed, and the
// jobs that embed).
type embedOptions struct {
	normalize string
	dims      int
	truncate  bool
}

func (e *embedOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&e.normalize, "normalize", "default", "L2-normalise vectors: default (as the model says), true, false")
	fs.IntVar(&e.dims, "dimensions", 0, "keep the first `n` components (Matryoshka); 0 keeps all")
	fs.BoolVar(&e.truncate, "truncate", true, "cut texts over the model's max length; false refuses them (a job records each refused line in --errors)")
}

func (e *embedOptions) options() (models.Options, error) {
	o := models.Options{Dimensions: e.dims}
	switch e.normalize {
	case "default":
	case "true":
		o.Normalize = models.NormalizeOn
	case "false":
		o.Normalize = models.NormalizeOff
	default:
		return o, fmt.Errorf("--normalize %q is not one of default, true, false", e.normalize)
	}
	if !e.truncate {
		o.Truncate = models.Reject
	}
	return o, nil
}

func (e *embedOptions) params(p map[string]string, model string) {
	p["model"], p["normalize"], p["dimensions"], p["truncate"] = model, e.normalize, strconv.Itoa(e.dims), strconv.FormatBool(e.truncate)
}

func jobEmbedCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := newJobFlags("embed", "Embeds every line of INPUT through the application core and writes the\nvectors in input order.\n", stderr)
	var mf modelFlags
	mf.register(f.fs)
	var eo embedOptions
	eo.register(f.fs)
	into := f.fs.String("into", "", "upsert the vectors into this collection `name` instead of --out (created with the model and --metric when missing; no server may be writing it)")
	dataDir := dataDirFlag(f.fs)
	metric := f.fs.String("metric", "cosine", "with --into: a new collection's metric (cosine, dot, l2)")
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	j, err := f.job("embed", stdin, stdout, stderr)
	var opts models.Options
	if err == nil {
		opts, err = eo.options()
	}
	if err != nil {
		fmt.Fprintf(stderr, "embedd job embed: %v\n", err)
		return 2
	}
	eo.params(j.Params, mf.model)
	var c *core.Core
	if *into != "" {
		c, err = openCollectionsCore(&mf, *dataDir, "", stderr)
	} else {
		c, err = mf.openCore(stderr, -1)
	}
	if err != nil {
		fmt.Fprintf(stderr, "embedd job embed: %v\n", err)
		return 1
	}
	defer c.Close()
	ctx, stop := signalContext()
	defer stop()
	if *into != "" {
		if j.Output.Into, err = intoCollection(ctx, c, *into, mf.model, eo.dims, *metric); err != nil {
			fmt.Fprintf(stderr, "embedd job embed: --into %s: %v\n", *into, err)
			return 1
		}
		j.Params["into"] = *into
	}
	if j.Output.Format == jobs.OutputAuto && (j.Input.Format == jobs.InputOpenAI || j.Input.Format == jobs.InputAuto && sniffOpenAI(j.Input.Path)) {
		j.Output.Format = jobs.OutputOpenAI
	}
	j.Params["format"] = string(j.Output.Format)
	j.Stage = jobs.EmbedStage(c, jobs.EmbedOptions{Model: mf.model, Options: opts, CountTokens: j.Output.Format == jobs.OutputOpenAI})
	tot, err := jobs.Run(ctx, j)
	return finishJob("embed", tot, err, stderr)
}

// sniffOpenAI says whether the file at path starts with an OpenAI Batch
// API request line (stdin is not looked at: give --format openai).
func sniffOpenAI(path string) bool {
	if path == "-" {
		return false
	}
	f, err := jobs.DetectInput(path)
	return err == nil && f == jobs.InputOpenAI
}

func jobSearchCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := newJobFlags("search", "Answers every line of INPUT (a text, embedded with the collection's model,\nor a vector with --vectors) with its top k in a collection:\n{\"id\",\"neighbors\":[{\"id\",\"score\"}…]} lines in input order.\n", stderr)
	var mf modelFlags
	mf.register(f.fs)
	collection := f.fs.String("collection", "", "the collection `name` to search (required)")
	dataDir := dataDirFlag(f.fs)
	device := f.fs.String("search-device", "", "search backend: cpu, cuda, cuda:N or auto (default the config's)")
	k := f.fs.Int("k", 10, "neighbours per line")
	vectors := f.fs.Bool("vectors", false, "lines are vectors (JSONL --vector-field, Parquet), not texts")
	if err := f.fs.Parse(args); err != nil {
		return 2
	}
	j, err := f.job("search", stdin, stdout, stderr)
	if err == nil && *collection == "" {
		err = errors.New("--collection is required")
	}
	if err != nil {
		fmt.Fprintf(stderr, "embedd job search: %v\n", err)
		return 2
	}
	if j.Output.Format == jobs.OutputAuto {
		j.Output.Format = jobs.OutputNeighbors
	}
	j.Input.Vectors = *vectors
	j.Params["collection"], j.Params["k"], j.Params["vectors"], j.Params["model"] = *collection, strconv.Itoa(*k), strconv.FormatBool(*vectors), mf.model
	c, err := openCollectionsCore(&mf, *dataDir, *device, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "embedd job search: %v\n", err)
		return 1
	}
	defer c.Close()
	j.Params["format"] = string(j.Output.Format)
	j.Stage = jobs.SearchStage(c, jobs.SearchOptions{Collection: *collection, K: *k, Embed: core.EmbedSpec{Model: mf.model}})
	ctx, stop := signalContext()
	defer stop()
	tot, err := jobs.Run(ctx, j)
	return finishJob("search", tot, err, stderr)
}

// openCollectionsCore opens the core over the config's models and the
// collections of dataDir (default: the config's, $EMBEDD_DATA_DIR, else
// embedd-data), searching on device (default the config's); the caller
// closes it. No server may be writing the collections.
func openCollectionsCore(mf *modelFlags, dataDir, device string, stderr io.Writer) (*core.Core, error) {
	sc, err := loadServerConfig(mf.config)
	if err != nil {
		return nil, err
	}
	cfg := sc.Config
	if mf.ortLib != "" {
		cfg.ORTLib = mf.ortLib
	}
	cfg.DataDir, cfg.CacheBytes = dataDirOr(dataDir), -1
	if device != "" {
		cfg.SearchDevice = device
	}
	return core.Open(cfg, core.WithLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
}

// intoCollection returns an Output.Into that upserts results into
// collection name, created with the model (and --dimensions) and metric
// when it does not exist.
func intoCollection(ctx context.Context, c *core.Core, name, model string, dims int, metric string) (func([]jobs.Result) error, error) {
	cols, err := c.ListCollections()
	if err != nil {
		return nil, err
	}
	exists := false
	for _, ci := range cols {
		exists = exists || ci.Name == name
	}
	if !exists {
		m, err := flat.ParseMetric(metric)
		if err != nil {
			return nil, err
		}
		if model == "" {
			for _, mi := range c.Models() {
				if mi.Default {
					model = mi.ID
				}
			}
		}
		if _, err := c.CreateCollection(name, index.Spec{Model: model, Dim: dims, Metric: m}); err != nil {
			return nil, err
		}
	}
	return func(rs []jobs.Result) error {
		recs := make([]core.Record, 0, len(rs))
		for _, r := range rs {
			for _, v := range r.Vectors {
				recs = append(recs, core.Record{ID: r.ID, Vector: v})
			}
		}
		_, err := c.Upsert(ctx, name, recs, core.EmbedSpec{})
		return err
	}, nil
}

func jobMergeCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("job merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "-", "output `file`, or - for stdout")
	format := fs.String("format", "auto", "output format: auto (by --out's extension), jsonl, npy, parquet, neighbors, openai")
	errs := fs.String("errors", "", "error `file` (default: --out + .errors.jsonl, or stderr for stdout)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: embedd job merge [flags] JOB_DIR...\n\nJoins the job directories of every shard of one job, in input order, into\none output, byte-identical to a single process's.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	of, err := jobs.ParseOutputFormat(*format)
	if err != nil || fs.NArg() == 0 {
		fmt.Fprintf(stderr, "embedd job merge: %v\n", cmpOr(err, "give the shards' job directories"))
		return 2
	}
	o := jobs.Output{Path: *out, Stdout: stdout, Format: of, ErrorsPath: *errs, Stderr: stderr}
	if *errs == "" && *out != "-" {
		o.ErrorsPath = *out + ".errors.jsonl"
	}
	tot, err := jobs.Merge(fs.Args(), o)
	if tot.Capped {
		fmt.Fprintln(stderr, "embedd job merge: the pairs were capped (the job's --max-pairs): lower the threshold's reach or raise the cap")
	}
	return finishJob("merge", tot, err, stderr)
}

func cmpOr(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}
