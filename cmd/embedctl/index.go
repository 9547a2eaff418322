package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/embedd/embedd/client"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// collectionJSON is how a collection is printed.
type collectionJSON struct {
	Name      string `json:"name"`
	Dimension uint32 `json:"dimension"`
	Metric    string `json:"metric"`
	Count     uint64 `json:"count"`
	Model     string `json:"model,omitempty"`
}

func toCollectionJSON(c *embeddv1.Collection) collectionJSON {
	return collectionJSON{Name: c.GetName(), Dimension: c.GetDimension(), Metric: metricName(c.GetMetric()), Count: c.GetCount(), Model: c.GetModel()}
}

// metrics are the --metric names.
var metrics = map[string]embeddv1.Metric{
	"cosine": embeddv1.Metric_METRIC_COSINE,
	"dot":    embeddv1.Metric_METRIC_DOT,
	"l2":     embeddv1.Metric_METRIC_L2,
}

func metricName(m embeddv1.Metric) string {
	if m == embeddv1.Metric_METRIC_UNSPECIFIED {
		return "cosine"
	}
	return strings.ToLower(strings.TrimPrefix(m.String(), "METRIC_"))
}

func collectionsCmd(e *env, args []string) int {
	const synopsis = "collections create NAME (--dim N | --model ID) [--metric cosine|dot|l2]\n       embedctl collections drop NAME...\n       embedctl collections list [--json]\n       embedctl collections compact NAME..."
	if len(args) == 0 {
		return e.usageErr("collections", "missing subcommand: create, drop, list or compact\nusage: embedctl %s", synopsis)
	}
	switch args[0] {
	case "create":
		return createCmd(e, args[1:])
	case "drop":
		return dropCmd(e, args[1:])
	case "list":
		return listCmd(e, args[1:])
	case "compact":
		return compactCmd(e, args[1:])
	case "-h", "-help", "--help":
		fmt.Fprintf(e.stderr, "usage: embedctl %s\n", synopsis)
		return 0
	}
	return e.usageErr("collections", "unknown subcommand %q: want create, drop, list or compact", args[0])
}

func createCmd(e *env, args []string) int {
	const cmd = "collections create"
	fs := e.newFlagSet(cmd, "collections create NAME (--dim N | --model ID) [--metric cosine|dot|l2]\n\nMakes an empty collection and prints it as JSON. With --model alone the dimension is\nthe model's; --dim N with --model keeps the first N components of the model's vectors\n(Matryoshka-style; N over the model's dimension is refused).")
	dim := fs.Uint("dim", 0, "vector `dimension` (default: the model's, with --model)")
	metric := fs.String("metric", "cosine", "similarity: cosine, dot or l2 (squared Euclidean distance)")
	model := fs.String("model", "", "embedding model `id` for text records and text queries")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 1 {
		return e.usageErr(cmd, "want one collection NAME, got %d arguments", len(pos))
	}
	m, ok := metrics[*metric]
	if !ok {
		return e.usageErr(cmd, "--metric %q is not one of cosine, dot, l2", *metric)
	}
	if *dim == 0 && *model == "" {
		return e.usageErr(cmd, "give --dim N, or --model ID to take the model's dimension")
	}
	if *dim > 1<<32-1 {
		return e.usageErr(cmd, "--dim %d is over %d", *dim, uint32(1<<32-1))
	}
	c, code := e.connect(cmd)
	if c == nil {
		return code
	}
	defer c.Close()
	coll, err := c.CreateCollection(e.ctx, &embeddv1.CreateCollectionRequest{Name: pos[0], Dimension: uint32(*dim), Metric: m, Model: *model})
	if err != nil {
		return e.fail(cmd, err)
	}
	return e.printJSON(cmd, toCollectionJSON(coll))
}

func dropCmd(e *env, args []string) int {
	return eachCollection(e, "collections drop", "collections drop NAME...\n\nDeletes collections and their records.",
		args, func(c *client.Client, name string) error { return c.DropCollection(e.ctx, name) })
}

// eachCollection runs fn for each collection NAME of args, in order, on one
// connection; the first failure stops it and is reported with its name.
func eachCollection(e *env, cmd, synopsis string, args []string, fn func(c *client.Client, name string) error) int {
	fs := e.newFlagSet(cmd, synopsis)
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(names) == 0 {
		return e.usageErr(cmd, "name at least one collection")
	}
	c, code := e.connect(cmd)
	if c == nil {
		return code
	}
	defer c.Close()
	for _, name := range names {
		if err := fn(c, name); err != nil {
			if _, ok := errors.AsType[*outputError](err); ok {
				return e.fail(cmd, err)
			}
			return e.fail(cmd, &placedError{where: name, err: err})
		}
	}
	return 0
}

func listCmd(e *env, args []string) int {
	const cmd = "collections list"
	fs := e.newFlagSet(cmd, "collections list [--json]\n\nLists the collections, as a table or as JSON lines.")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if pos, err := parseInterspersed(fs, args); err != nil {
		return parseExit(err)
	} else if len(pos) > 0 {
		return e.usageErr(cmd, "unexpected argument %q", pos[0])
	}
	c, code := e.connect(cmd)
	if c == nil {
		return code
	}
	defer c.Close()
	colls, err := c.ListCollections(e.ctx)
	if err != nil {
		return e.fail(cmd, err)
	}
	if *asJSON {
		for _, coll := range colls {
			if code := e.printJSON(cmd, toCollectionJSON(coll)); code != 0 {
				return code
			}
		}
		return 0
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDIMENSION\tMETRIC\tCOUNT\tMODEL")
	for _, coll := range colls {
		j := toCollectionJSON(coll)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", j.Name, j.Dimension, j.Metric, j.Count, j.Model)
	}
	if err := tw.Flush(); err != nil {
		return e.fail(cmd, fmt.Errorf("writing output: %w", err))
	}
	return 0
}

func compactCmd(e *env, args []string) int {
	const synopsis = "collections compact NAME...\n\nRewrites each collection's live records into new files, reclaiming the space of deleted\nand replaced ones (searches and writes go on meanwhile), and prints\n{\"collection\": {...}, \"rows_before\": n, \"rows_after\": n} per collection. A big\ncollection may take longer than --timeout: give --timeout 0 for no bound."
	enc := json.NewEncoder(e.stdout)
	return eachCollection(e, "collections compact", synopsis, args, func(c *client.Client, name string) error {
		resp, err := embeddv1.NewIndexServiceClient(c.Conn()).Compact(e.ctx, &embeddv1.CompactRequest{Name: name})
		if err != nil {
			return err
		}
		out := struct {
			Collection collectionJSON `json:"collection"`
			RowsBefore uint64         `json:"rows_before"`
			RowsAfter  uint64         `json:"rows_after"`
		}{toCollectionJSON(resp.GetCollection()), resp.GetRowsBefore(), resp.GetRowsAfter()}
		if err := enc.Encode(out); err != nil {
			return &outputError{err}
		}
		return nil
	})
}

// outputError is a failure to write the output, reported as it is.
type outputError struct{ err error }

func (o *outputError) Error() string { return "writing output: " + o.err.Error() }

// printJSON writes v as one JSON line.
func (e *env) printJSON(cmd string, v any) int {
	if err := json.NewEncoder(e.stdout).Encode(v); err != nil {
		return e.fail(cmd, fmt.Errorf("writing output: %w", err))
	}
	return 0
}

// recordJSON is one record, read by upsert and printed by get.
type recordJSON struct {
	ID       string          `json:"id"`
	Vector   []float32       `json:"vector,omitempty"`
	Text     string          `json:"text,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// maxBatchBytes bounds the input bytes of one Upsert request, well under
// the server's default message limit of 32 MiB.
const maxBatchBytes = 4 << 20

func upsertCmd(e *env, args []string) int {
	const cmd = "upsert"
	fs := e.newFlagSet(cmd, "upsert [--batch N] [--shards A,B,...] COLLECTION < records\n\nReads one record per line of stdin, {\"id\": ..., \"vector\": [...], \"metadata\": {...}}, or with\n\"text\" instead of \"vector\" to have the server embed it with the collection's model,\nsends them in batches, and prints {\"upserted\": n}.")
	batch := fs.Int("batch", 256, "records per request (requests are also kept under 4 MiB)")
	shards := fs.String("shards", "", shardsUsage)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 1 {
		return e.usageErr(cmd, "want one COLLECTION, got %d arguments", len(pos))
	}
	if *batch < 1 {
		return e.usageErr(cmd, "--batch %d is not ≥ 1", *batch)
	}
	c, code := e.connectRecords(cmd, *shards)
	if c == nil {
		return code
	}
	defer c.Close()

	var (
		total, firstLine int
		recs             []*embeddv1.Record
		bytesIn          int
	)
	flush := func(lastLine int) error {
		if len(recs) == 0 {
			return nil
		}
		n, err := c.Upsert(e.ctx, &embeddv1.UpsertRequest{Collection: pos[0], Records: recs})
		if err != nil {
			return textsErr(firstLine-1, lastLine-firstLine+1, "line", err)
		}
		total += int(n)
		recs, bytesIn = nil, 0
		return nil
	}
	sc := bufio.NewScanner(e.stdin)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		r, err := parseRecord(line)
		if err != nil {
			return e.fail(cmd, fmt.Errorf("line %d: %w", lineNo, err))
		}
		if len(recs) == 0 {
			firstLine = lineNo
		}
		recs = append(recs, r)
		bytesIn += len(line)
		if len(recs) == *batch || bytesIn >= maxBatchBytes {
			if err := flush(lineNo); err != nil {
				return e.fail(cmd, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line %d is over %d bytes", lineNo+1, maxLineBytes)
		}
		return e.fail(cmd, fmt.Errorf("reading stdin: %w", err))
	}
	if err := flush(lineNo); err != nil {
		return e.fail(cmd, err)
	}
	return e.printJSON(cmd, map[string]int{"upserted": total})
}

// parseRecord reads one upsert line strictly.
func parseRecord(line []byte) (*embeddv1.Record, error) {
	var r recordJSON
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("not a record (%v); want {\"id\": ..., \"vector\": [...] or \"text\": ..., \"metadata\": {...}}", err)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value")
	}
	switch {
	case r.ID == "":
		return nil, errors.New(`"id": missing or empty`)
	case len(r.Vector) > 0 && r.Text != "":
		return nil, errors.New(`give "vector" or "text", not both`)
	case len(r.Vector) == 0 && r.Text == "":
		return nil, errors.New(`give "vector" or "text"`)
	}
	md := bytes.TrimSpace(r.Metadata)
	if bytes.Equal(md, []byte("null")) {
		md = nil
	}
	if len(md) > 0 && md[0] != '{' {
		return nil, fmt.Errorf(`"metadata": %.40s is not a JSON object`, md)
	}
	return &embeddv1.Record{Id: r.ID, Vector: r.Vector, Text: r.Text, Metadata: md}, nil
}

// records is a server, or the shards of a collection split by id.
type records interface {
	Upsert(ctx context.Context, req *embeddv1.UpsertRequest) (uint64, error)
	Delete(ctx context.Context, collection string, ids []string) (uint64, error)
	Get(ctx context.Context, collection string, ids []string) (*embeddv1.GetResponse, error)
	Close() error
}

// connectRecords dials the shards when list is not empty, else the
// server; the caller closes the result, which is nil on failure.
func (e *env) connectRecords(cmd, list string) (records, int) {
	if list != "" {
		s, code := e.connectShards(cmd, list)
		if s == nil {
			return nil, code
		}
		return s, 0
	}
	c, code := e.connect(cmd)
	if c == nil {
		return nil, code
	}
	return c, 0
}

func deleteCmd(e *env, args []string) int {
	const cmd = "delete"
	return e.withCollectionIDs(cmd, "delete [--shards A,B,...] COLLECTION ID...\n\nRemoves records by id and prints {\"deleted\": n}, the number that existed.", args,
		func(c records, collection string, ids []string) int {
			n, err := c.Delete(e.ctx, collection, ids)
			if err != nil {
				return e.fail(cmd, err)
			}
			return e.printJSON(cmd, map[string]uint64{"deleted": n})
		})
}

func getCmd(e *env, args []string) int {
	const cmd = "get"
	return e.withCollectionIDs(cmd, "get [--shards A,B,...] COLLECTION ID...\n\nPrints the records as JSON lines, in the order asked; ids not found are listed on\nstderr and make the exit status 1.", args,
		func(c records, collection string, ids []string) int {
			resp, err := c.Get(e.ctx, collection, ids)
			if err != nil {
				return e.fail(cmd, err)
			}
			for _, r := range resp.GetRecords() {
				if code := e.printJSON(cmd, recordJSON{ID: r.GetId(), Vector: r.GetVector(), Text: r.GetText(), Metadata: rawJSON(r.GetMetadata())}); code != 0 {
					return code
				}
			}
			if m := resp.GetMissing(); len(m) > 0 {
				fmt.Fprintf(e.stderr, "embedctl get: not found in %s: %s\n", collection, strings.Join(m, ", "))
				return 1
			}
			return 0
		})
}

// withCollectionIDs parses "COLLECTION ID..." (at least one id), connects,
// and runs fn; it returns fn's exit status, or the usage or connection one.
func (e *env) withCollectionIDs(cmd, usage string, args []string, fn func(c records, collection string, ids []string) int) int {
	fs := e.newFlagSet(cmd, usage)
	shards := fs.String("shards", "", shardsUsage)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) < 2 {
		return e.usageErr(cmd, "want COLLECTION and at least one ID")
	}
	c, code := e.connectRecords(cmd, *shards)
	if c == nil {
		return code
	}
	defer c.Close()
	return fn(c, pos[0], pos[1:])
}

// rawJSON returns metadata as JSON: itself when valid, else a JSON string,
// so that one bad record cannot break the output.
func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 || json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// filterFlag collects repeated --filter key=value.
type filterFlag map[string]string

func (f filterFlag) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, k+"="+f[k])
	}
	return strings.Join(parts, ",")
}

func (f filterFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	f[k] = v
	return nil
}

// hitJSON is one line of search output.
type hitJSON struct {
	Rank     int             `json:"rank"`
	ID       string          `json:"id"`
	Score    float32         `json:"score"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Vector   []float32       `json:"vector,omitempty"`
}

func searchCmd(e *env, args []string) int {
	const cmd = "search"
	fs := e.newFlagSet(cmd, "search [--shards A,B,... [--partial]] COLLECTION (--text T | --vector '[...]') [--k 10] [--filter key=value]...\n\nPrints the k nearest records as JSON lines {\"rank\", \"id\", \"score\", \"metadata\"}, best first.\nWith --shards every shard is asked for k and the answers are merged exactly (by score,\nthen id); a shard that does not answer fails the search unless --partial is given.")
	k := fs.Uint("k", 10, "number of results, in [1, 10000]")
	text := fs.String("text", "", "query `text`, embedded with the collection's model")
	vector := fs.String("vector", "", "query vector as a JSON `array`")
	filter := filterFlag{}
	fs.Var(filter, "filter", "keep records whose metadata has `key=value` (repeatable; all must hold)")
	withMeta := fs.Bool("metadata", true, "print each hit's metadata")
	withVec := fs.Bool("vectors", false, "print each hit's vector")
	shards := fs.String("shards", "", shardsUsage)
	partial := fs.Bool("partial", false, "with --shards: print the merged hits of the shards that answer when others do not (those are named on stderr; exit status 0)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 1 {
		return e.usageErr(cmd, "want one COLLECTION, got %d arguments", len(pos))
	}
	if *partial && *shards == "" {
		return e.usageErr(cmd, "--partial needs --shards")
	}
	if *k < 1 || *k > 10000 {
		return e.usageErr(cmd, "--k %d is not in [1, 10000]", *k)
	}
	var q *embeddv1.Query
	switch {
	case (*text == "") == (*vector == ""):
		return e.usageErr(cmd, "give one of --text or --vector")
	case *text != "":
		q = &embeddv1.Query{Query: &embeddv1.Query_Text{Text: *text}}
	default:
		var v []float32
		if err := json.Unmarshal([]byte(*vector), &v); err != nil || len(v) == 0 {
			return e.usageErr(cmd, "--vector %.40q is not a JSON array of numbers", *vector)
		}
		q = &embeddv1.Query{Query: &embeddv1.Query_Vector{Vector: &embeddv1.Embedding{Values: v}}}
	}
	req := &embeddv1.SearchRequest{
		Collection: pos[0], Queries: []*embeddv1.Query{q}, K: uint32(*k), Filter: filter,
		IncludeMetadata: *withMeta, IncludeVectors: *withVec,
	}
	res, code := e.search(cmd, req, *shards, *partial)
	if res == nil {
		return code
	}
	out := bufio.NewWriter(e.stdout)
	enc := json.NewEncoder(out)
	for i, h := range res[0].GetHits() {
		if err := enc.Encode(hitJSON{Rank: i + 1, ID: h.GetId(), Score: h.GetScore(), Metadata: rawJSON(h.GetMetadata()), Vector: h.GetVector()}); err != nil {
			return e.fail(cmd, fmt.Errorf("writing output: %w", err))
		}
	}
	if err := out.Flush(); err != nil {
		return e.fail(cmd, fmt.Errorf("writing output: %w", err))
	}
	return 0
}

// search runs req on the server, or on the shards when list is not empty
// (naming on stderr those that did not answer when partial); it returns
// nil and the exit status on failure.
func (e *env) search(cmd string, req *embeddv1.SearchRequest, list string, partial bool) ([]*embeddv1.SearchResult, int) {
	if list == "" {
		c, code := e.connect(cmd)
		if c == nil {
			return nil, code
		}
		defer c.Close()
		res, err := c.Search(e.ctx, req)
		if err != nil {
			return nil, e.fail(cmd, err)
		}
		return res, 0
	}
	s, code := e.connectShards(cmd, list)
	if s == nil {
		return nil, code
	}
	defer s.Close()
	res, err := s.Search(e.ctx, req, client.ShardedSearchOptions{AllowPartial: partial})
	if err != nil {
		return nil, e.failShards(cmd, err)
	}
	for _, f := range res.Failed {
		fmt.Fprintf(e.stderr, "embedctl %s: partial results: shard %d (%s) did not answer: %s\n", cmd, f.Shard, f.Target, describe(f.Err))
	}
	return res.Results, 0
}

// failShards prints a sharded call's error, one line per failed shard,
// and returns exit code 1.
func (e *env) failShards(cmd string, err error) int {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, se := range joined.Unwrap() {
			if f, ok := errors.AsType[*client.ShardError](se); ok {
				fmt.Fprintf(e.stderr, "embedctl %s: shard %d (%s): %s\n", cmd, f.Shard, f.Target, describe(f.Err))
			}
		}
		return 1
	}
	return e.fail(cmd, err)
}
