package jobs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// work is one part on its way through the stage.
type work struct {
	part int
	recs []Record
}

// finished is a part out of the stage; res is nil when the part went to
// the job directory instead.
type finished struct {
	part, n, failed int
	res             []Result
	// out is the part's output made by the worker (JSON lines), when
	// encoded; the writer then only writes it.
	out     []byte
	encoded bool
}

// Run runs j to the end: every record read, passed through the stage and
// written, in input order, to j.Output (through part files in j.Dir when
// it is set, renamed into place at the end). It stops at ctx's end, at the
// first error that stops the job (the stage's, the input's or the
// output's) or after j.MaxErrors failed records; a job directory is then
// left resumable. The totals are right even when an error is returned.
func Run(ctx context.Context, j Job) (Totals, error) {
	start := time.Now()
	if err := j.defaults(); err != nil {
		return Totals{}, err
	}
	j.Input.defaults()
	var done map[int]int
	if j.Dir != "" {
		m, err := j.manifest()
		if err != nil {
			return Totals{}, err
		}
		if err := prepareDir(j.Dir, m); err != nil {
			return Totals{}, err
		}
		if done, err = listParts(j.Dir); err != nil {
			return Totals{}, err
		}
	}
	src, err := j.Input.open(j.Shard)
	if err != nil {
		return Totals{}, err
	}
	defer src.close()
	var out *sink
	if j.Dir == "" {
		if out, err = j.Output.open(); err != nil {
			return Totals{}, err
		}
	}
	r := &runner{j: &j, src: src, done: done, out: out, start: start}
	tot, err := r.run(ctx)
	if err != nil {
		if out != nil {
			out.abort()
		}
		return tot, err
	}
	if j.Dir == "" {
		return tot, out.commit()
	}
	if err := writeJSONAtomic(filepath.Join(j.Dir, "done.json"), doneFile{Parts: r.parts, Read: tot.Read, Failed: tot.Failed}); err != nil {
		return tot, err
	}
	tot.Written, _, err = assemble(j.Output, []string{j.Dir}, []int{r.parts}, false)
	tot.Seconds = time.Since(start).Seconds()
	return tot, err
}

// Partial writes what a stopped job (one with a job directory, stopped
// before its output was written: cancelled, or out of time) has done to
// j.Output: the results of its complete parts, in input order, leaving out
// the parts not done. Written and Failed count the results written.
func Partial(j Job) (Totals, error) {
	start := time.Now()
	have, err := listParts(j.Dir)
	if err != nil {
		return Totals{}, err
	}
	parts := 0
	for p := range have {
		parts = max(parts, p+1)
	}
	var tot Totals
	tot.Written, tot.Failed, err = assemble(j.Output, []string{j.Dir}, []int{parts}, true)
	tot.Read = tot.Written + tot.Failed
	tot.Seconds = time.Since(start).Seconds()
	return tot, err
}

// runner is one Run's pipeline: a reader goroutine cutting the input into
// parts, Workers stage goroutines, and Run's goroutine collecting their
// results in order.
type runner struct {
	j     *Job
	src   source
	done  map[int]int // parts already in the job directory
	out   *sink       // streaming output; nil with a job directory
	start time.Time
	parts int // parts in the shard, once the reader has finished

	read, resumed, resumedFailed atomic.Int64
}

func (r *runner) run(ctx context.Context) (Totals, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	j := r.j
	// tokens bounds the parts between the reader and the in-order writer,
	// so a slow part cannot make the reorder buffer grow.
	tokens := make(chan struct{}, 2*j.Workers)
	todo := make(chan work, j.Workers)
	results := make(chan finished, j.Workers)
	var wg sync.WaitGroup
	var readErr error
	wg.Go(func() {
		defer close(todo)
		readErr = r.readParts(ctx, tokens, todo)
		if readErr != nil {
			cancel(readErr)
		}
	})
	var workers sync.WaitGroup
	for range j.Workers {
		workers.Go(func() {
			for w := range todo {
				if ctx.Err() != nil {
					continue // stopped: take no more work, let the reader finish
				}
				f, err := r.process(ctx, w)
				if err != nil {
					cancel(err)
					continue
				}
				results <- f
			}
		})
	}
	go func() {
		workers.Wait()
		close(results)
	}()

	var tot Totals
	pending := map[int]finished{}
	nextOut := 0
	tick := time.NewTicker(j.ProgressEvery)
	defer tick.Stop()
	var werr error
	report := func(final bool) {
		if j.Progress != nil {
			b, t := r.src.progress()
			j.Progress(Progress{Read: r.read.Load(), Done: tot.Written + tot.Failed + r.resumed.Load(), Failed: tot.Failed + r.resumedFailed.Load(), Bytes: b, TotalBytes: t, Elapsed: time.Since(r.start), Final: final})
		}
	}
	for results != nil {
		select {
		case f, ok := <-results:
			if !ok {
				results = nil
				continue
			}
			tot.Failed += int64(f.failed)
			tot.Written += int64(f.n - f.failed)
			if r.out == nil {
				<-tokens
			} else {
				pending[f.part] = f
				for werr == nil {
					g, ok := pending[nextOut]
					if !ok {
						break
					}
					delete(pending, nextOut)
					if g.encoded {
						werr = r.out.writeEncoded(g.res, g.out)
					} else {
						for i := range g.res {
							if werr = r.out.write(&g.res[i]); werr != nil {
								break
							}
						}
					}
					if werr != nil {
						werr = fmt.Errorf("embedd/jobs: writing output: %w", werr)
						cancel(werr)
					}
					nextOut++
					<-tokens
				}
			}
			if j.MaxErrors > 0 && tot.Failed+r.resumedFailed.Load() >= j.MaxErrors {
				cancel(fmt.Errorf("%w: %d records failed (--max-errors %d); see the error file", ErrTooManyErrors, tot.Failed+r.resumedFailed.Load(), j.MaxErrors))
			}
		case <-tick.C:
			report(false)
		}
	}
	wg.Wait()
	report(true)
	tot.Read = r.read.Load()
	tot.Resumed = r.resumed.Load()
	tot.Failed += r.resumedFailed.Load()
	tot.Seconds = time.Since(r.start).Seconds()
	if err := context.Cause(ctx); err != nil {
		return tot, err
	}
	return tot, nil
}

// readParts cuts the input into parts and sends those not yet done; it
// returns nil at the end of the input.
func (r *runner) readParts(ctx context.Context, tokens chan struct{}, todo chan<- work) error {
	size := r.j.PartSize
	for p := 0; ; p++ {
		recs := make([]Record, 0, size)
		for len(recs) < size {
			var rec Record
			ok, err := r.src.next(&rec)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			recs = append(recs, rec)
		}
		if len(recs) == 0 {
			r.parts = p
			return nil
		}
		r.read.Add(int64(len(recs)))
		if n, ok := r.done[p]; ok && n == len(recs) {
			r.resumed.Add(int64(n))
			if err := r.countResumedFailures(p, n); err != nil {
				return err
			}
			continue
		}
		select {
		case tokens <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		select {
		case todo <- work{p, recs}:
		case <-ctx.Done():
			return nil
		}
		if len(recs) < size {
			r.parts = p + 1
			return nil
		}
	}
}

// countResumedFailures adds the failed records of a resumed part.
func (r *runner) countResumedFailures(p, n int) error {
	return readPart(filepath.Join(r.j.Dir, partName(p, n)), n, func(res *Result) error {
		if res.Err != "" {
			r.resumedFailed.Add(1)
		}
		return nil
	})
}

// process runs the stage on one part and, with a job directory, writes it.
func (r *runner) process(ctx context.Context, w work) (finished, error) {
	res := make([]Result, len(w.recs))
	for i, rec := range w.recs {
		res[i] = Result{Line: rec.Line, ID: rec.ID, Err: rec.Err, Base64: rec.Base64}
	}
	if err := r.j.Stage(ctx, w.recs, res); err != nil {
		return finished{}, err
	}
	f := finished{part: w.part, n: len(res), res: res}
	for i := range res {
		if res[i].Err != "" {
			f.failed++
		}
	}
	if r.j.Dir != "" {
		if err := writePart(r.j.Dir, w.part, res); err != nil {
			return finished{}, err
		}
		f.res = nil
	} else if r.out != nil {
		if f.out, f.encoded = r.out.encode(res); f.encoded {
			for i := range res {
				res[i].Vectors = nil // written: only the bytes go on
			}
		}
	}
	return f, nil
}

// assemble writes the parts of dirs (parts[i] of dirs[i]), in order, to
// out and returns the records written and the failed ones (those go to the
// error file). A missing part is an error, found before anything is
// written, or with partial left out. JSON lines are made from the parts on
// every core, and written in order.
func assemble(out Output, dirs []string, parts []int, partial bool) (written, failed int64, _ error) {
	var paths []string
	var ns []int
	for i, dir := range dirs {
		have, err := listParts(dir)
		if err != nil {
			return 0, 0, err
		}
		for p := range parts[i] {
			n, ok := have[p]
			if !ok && partial {
				continue
			}
			if !ok {
				return 0, 0, fmt.Errorf("%w: %s has no part %d", ErrIncomplete, dir, p)
			}
			paths, ns = append(paths, filepath.Join(dir, partName(p, n))), append(ns, n)
		}
	}
	s, err := out.open()
	if err != nil {
		return 0, 0, err
	}
	count := func(res *Result) {
		if res.Err == "" {
			written++
		} else {
			failed++
		}
	}
	lw, isLines := s.out.(lines)
	if !isLines {
		for i, path := range paths {
			err := readPart(path, ns[i], func(res *Result) error {
				count(res)
				return s.write(res)
			})
			if err != nil {
				s.abort()
				return 0, 0, err
			}
		}
		return written, failed, s.commit()
	}
	// A part made ready: its output lines and its failures (which go to
	// the error file, in their order).
	type ready struct {
		out    []byte
		failed []Result
		err    error
	}
	done := make([]chan ready, len(paths))
	for i := range done {
		done[i] = make(chan ready, 1)
	}
	slots := make(chan struct{}, 2*runtime.GOMAXPROCS(0))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i, path := range paths {
			select {
			case slots <- struct{}{}:
			case <-stop:
				return
			}
			go func() {
				r := ready{out: s.buf()}
				r.err = readPart(path, ns[i], func(res *Result) error {
					if res.Err == "" {
						r.out = lw.appendLines(r.out, res)
					} else {
						r.failed = append(r.failed, Result{Line: res.Line, ID: res.ID, Err: res.Err})
					}
					return nil
				})
				done[i] <- r
			}()
		}
	}()
	for i := range paths {
		r := <-done[i]
		<-slots
		if r.err == nil {
			r.err = s.writeEncoded(r.failed, r.out)
		}
		if r.err != nil {
			s.abort()
			return 0, 0, r.err
		}
		written += int64(ns[i] - len(r.failed))
		failed += int64(len(r.failed))
	}
	return written, failed, s.commit()
}

// Merge joins the outputs of a sharded job: dirs are the shards' job
// directories (any order; every shard of the job exactly once, each
// finished), and out receives their results in input order, byte-identical
// to one process's output.
func Merge(dirs []string, out Output) (Totals, error) {
	start := time.Now()
	type shard struct {
		dir  string
		m    manifest
		done doneFile
		sh   Shard
	}
	var shards []shard
	for _, dir := range dirs {
		var s shard
		s.dir = dir
		if err := readJSON(filepath.Join(dir, "manifest.json"), &s.m); err != nil {
			return Totals{}, err
		}
		if err := readJSON(filepath.Join(dir, "done.json"), &s.done); err != nil {
			return Totals{}, fmt.Errorf("%w: %s: %w", ErrIncomplete, dir, err)
		}
		sh, err := ParseShard(s.m.Shard)
		if err != nil {
			return Totals{}, err
		}
		s.sh = sh
		shards = append(shards, s)
	}
	if len(shards) == 0 {
		return Totals{}, errors.New("embedd/jobs: merge: no job directories")
	}
	n := shards[0].sh.Count
	ordered := make([]*shard, n)
	for i := range shards {
		s := &shards[i]
		m0 := shards[0].m
		m0.Shard, m0.Input.Path = s.m.Shard, s.m.Input.Path
		if d := m0.diff(s.m); len(d) > 0 || s.sh.Count != n {
			return Totals{}, fmt.Errorf("%w: %s and %s are not shards of one job: %v", ErrMismatch, shards[0].dir, s.dir, d)
		}
		if ordered[s.sh.Index] != nil {
			return Totals{}, fmt.Errorf("embedd/jobs: merge: shard %s given twice (%s, %s)", s.m.Shard, ordered[s.sh.Index].dir, s.dir)
		}
		ordered[s.sh.Index] = s
	}
	var tot Totals
	var ds []string
	var ps []int
	for i, s := range ordered {
		if s == nil {
			return Totals{}, fmt.Errorf("%w: shard %d/%d is missing", ErrIncomplete, i, n)
		}
		ds, ps = append(ds, s.dir), append(ps, s.done.Parts)
		tot.Read += s.done.Read
		tot.Failed += s.done.Failed
	}
	if shards[0].m.Kind == "pairs" {
		tot, err := mergePairs(ds, ordered[0].m, ordered[0].done, out)
		tot.Seconds = time.Since(start).Seconds()
		return tot, err
	}
	if out.Format == OutputAuto {
		out.Format = OutputFormat(shards[0].m.Params["format"])
	}
	var err error
	tot.Written, _, err = assemble(out, ds, ps, false)
	tot.Seconds = time.Since(start).Seconds()
	return tot, err
}
