package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const batchesUsage = `batches <submit|get|list|cancel|watch|download> ...

OpenAI's Batch API over the server's HTTP address (--http HOST:PORT, default
$EMBEDD_HTTP_ADDR, else 127.0.0.1:8080; HTTPS with --tls or --tls-ca; the API key
as Authorization: Bearer):

  batches submit FILE [--metadata k=v]... [--wait [-o OUT] [--errors ERR]]
      uploads FILE (OpenAI batch request lines for /v1/embeddings), creates a batch
      and prints it; --wait watches it and then downloads as "download" does
  batches get ID              prints the batch
  batches list [--limit 20] [--after ID]
                              prints batches, newest first, one a line
  batches cancel ID           cancels the batch and prints it
  batches watch ID [--every 1s]
                              progress on stderr until the batch ends; prints the
                              batch; exit status 0 only when it completed
  batches download ID [-o OUT] [--errors ERR]
                              the output file to OUT (default stdout), the error
                              file to ERR`

// batchesCmd runs "embedctl batches ...".
func batchesCmd(e *env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(e.stderr, "usage: embedctl "+batchesUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, ok := map[string]func(*env, *batchAPI, []string) int{
		"submit": batchSubmit, "get": batchGet, "list": batchList, "cancel": batchCancel,
		"watch": batchWatch, "download": batchDownload,
	}[args[0]]
	if !ok {
		return e.usageErr("batches", "unknown subcommand %q; run \"embedctl batches -h\"", args[0])
	}
	name := "batches " + args[0]
	fs := e.newFlagSet(name, batchesUsage)
	api := &batchAPI{e: e, cmd: name}
	fs.StringVar(&api.addr, "http", "", "the server's HTTP `host:port` (default $EMBEDD_HTTP_ADDR, else 127.0.0.1:8080)")
	api.fs = fs
	return sub(e, api, args[1:])
}

// batchAPI is the HTTP side of the server for one batches command.
type batchAPI struct {
	e    *env
	cmd  string
	fs   *flag.FlagSet
	addr string
	base string
	http *http.Client
}

// parse parses the subcommand's flags and wants n positional arguments.
func (a *batchAPI) parse(args []string, n int, names string) ([]string, int) {
	pos, err := parseInterspersed(a.fs, args)
	if err != nil {
		return nil, parseExit(err)
	}
	if len(pos) != n {
		return nil, a.e.usageErr(a.cmd, "want %s, got %d arguments", names, len(pos))
	}
	scheme, tr := "http", &http.Transport{}
	if a.e.tls || a.e.tlsCA != "" {
		scheme, tr.TLSClientConfig = "https", &tls.Config{}
		if a.e.tlsCA != "" {
			pem, err := os.ReadFile(a.e.tlsCA)
			pool := x509.NewCertPool()
			if err != nil || !pool.AppendCertsFromPEM(pem) {
				return nil, a.e.usageErr(a.cmd, "--tls-ca %s: no PEM certificates (%v)", a.e.tlsCA, err)
			}
			tr.TLSClientConfig.RootCAs = pool
		}
	}
	a.base = scheme + "://" + cmp.Or(a.addr, os.Getenv("EMBEDD_HTTP_ADDR"), "127.0.0.1:8080")
	a.http = &http.Client{Transport: tr}
	return pos, 0
}

// apiError is an OpenAI error body.
type apiError struct {
	Error struct {
		Message string `json:"message"`
	} `json:"error"`
}

// do sends one request (bounded by --timeout unless stream) and decodes a
// JSON answer into v, or returns the response body to read when v is nil.
func (a *batchAPI) do(method, path, contentType string, body io.Reader, v any, stream bool) (io.ReadCloser, error) {
	ctx, cancel := a.e.ctx, context.CancelFunc(func() {})
	if a.e.timeout > 0 && !stream {
		ctx, cancel = context.WithTimeout(ctx, a.e.timeout)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		cancel()
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if a.e.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+a.e.apiKey)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		var ae apiError
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(raw, &ae) == nil && ae.Error.Message != "" {
			return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, ae.Error.Message)
		}
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if v == nil {
		return cancelOnClose{resp.Body, cancel}, nil
	}
	defer cancel()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return nil, nil
}

// cancelOnClose is a response body that ends its request's context when
// closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// batchObject is what the commands read of a batch.
type batchObject struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	OutputFileID  string `json:"output_file_id"`
	ErrorFileID   string `json:"error_file_id"`
	RequestCounts struct {
		Total, Completed, Failed int64
	} `json:"request_counts"`
	Errors *struct {
		Data []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Line    *int64 `json:"line"`
		} `json:"data"`
	} `json:"errors"`
	raw json.RawMessage
}

// getBatch reads batch id.
func (a *batchAPI) getBatch(id string) (batchObject, error) {
	var raw json.RawMessage
	if _, err := a.do("GET", "/v1/batches/"+url.PathEscape(id), "", nil, &raw, false); err != nil {
		return batchObject{}, err
	}
	return decodeBatch(raw)
}

func decodeBatch(raw json.RawMessage) (batchObject, error) {
	var b batchObject
	if err := json.Unmarshal(raw, &b); err != nil {
		return b, fmt.Errorf("reading the batch: %w", err)
	}
	b.raw = raw
	return b, nil
}

// print writes a JSON answer as one line.
func (a *batchAPI) print(raw json.RawMessage) int {
	var v any
	json.Unmarshal(raw, &v)
	if err := json.NewEncoder(a.e.stdout).Encode(v); err != nil {
		return a.e.fail(a.cmd, fmt.Errorf("writing output: %w", err))
	}
	return 0
}

func batchSubmit(e *env, a *batchAPI, args []string) int {
	var meta []string
	a.fs.Func("metadata", "a `key=value` to attach to the batch (repeatable)", func(s string) error {
		if !strings.Contains(s, "=") {
			return errors.New("want key=value")
		}
		meta = append(meta, s)
		return nil
	})
	wait := a.fs.Bool("wait", false, "watch the batch until it ends, then download its output")
	dl := downloadFlags(a.fs)
	pos, code := a.parse(args, 1, "FILE")
	if pos == nil {
		return code
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return e.fail(a.cmd, err)
	}
	defer f.Close()
	// The file streams through a pipe: never whole in memory.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", filepath.Base(pos[0]))
		if err == nil {
			_, err = io.Copy(fw, f)
		}
		if err == nil {
			err = mw.WriteField("purpose", "batch")
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	var file struct {
		ID string `json:"id"`
	}
	if _, err := a.do("POST", "/v1/files", mw.FormDataContentType(), pr, &file, true); err != nil {
		pr.CloseWithError(err)
		return e.fail(a.cmd, err)
	}
	req := map[string]any{"input_file_id": file.ID, "endpoint": "/v1/embeddings", "completion_window": "24h"}
	if len(meta) > 0 {
		md := map[string]string{}
		for _, kv := range meta {
			k, v, _ := strings.Cut(kv, "=")
			md[k] = v
		}
		req["metadata"] = md
	}
	body, _ := json.Marshal(req)
	var raw json.RawMessage
	if _, err := a.do("POST", "/v1/batches", "application/json", strings.NewReader(string(body)), &raw, false); err != nil {
		return e.fail(a.cmd, err)
	}
	if !*wait {
		return a.print(raw)
	}
	b, err := decodeBatch(raw)
	if err != nil {
		return e.fail(a.cmd, err)
	}
	if code := a.watch(b.ID, time.Second); code != 0 {
		return code
	}
	return a.download(b.ID, dl)
}

func batchGet(e *env, a *batchAPI, args []string) int {
	pos, code := a.parse(args, 1, "ID")
	if pos == nil {
		return code
	}
	b, err := a.getBatch(pos[0])
	if err != nil {
		return e.fail(a.cmd, err)
	}
	return a.print(b.raw)
}

func batchList(e *env, a *batchAPI, args []string) int {
	limit := a.fs.Int("limit", 20, "batches to list, 1 to 100")
	after := a.fs.String("after", "", "list the batches after (older than) this `id`")
	pos, code := a.parse(args, 0, "no arguments")
	if pos == nil && code != 0 {
		return code
	}
	q := url.Values{"limit": {fmt.Sprint(*limit)}}
	if *after != "" {
		q.Set("after", *after)
	}
	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	if _, err := a.do("GET", "/v1/batches?"+q.Encode(), "", nil, &page, false); err != nil {
		return e.fail(a.cmd, err)
	}
	for _, raw := range page.Data {
		if code := a.print(raw); code != 0 {
			return code
		}
	}
	return 0
}

func batchCancel(e *env, a *batchAPI, args []string) int {
	pos, code := a.parse(args, 1, "ID")
	if pos == nil {
		return code
	}
	var raw json.RawMessage
	if _, err := a.do("POST", "/v1/batches/"+url.PathEscape(pos[0])+"/cancel", "", nil, &raw, false); err != nil {
		return e.fail(a.cmd, err)
	}
	return a.print(raw)
}

func batchWatch(e *env, a *batchAPI, args []string) int {
	every := a.fs.Duration("every", time.Second, "how often to ask")
	pos, code := a.parse(args, 1, "ID")
	if pos == nil {
		return code
	}
	return a.watch(pos[0], *every)
}

// watch reports batch id's progress on stderr until it ends, then prints
// it; 0 only when it completed.
func (a *batchAPI) watch(id string, every time.Duration) int {
	start := time.Now()
	for {
		b, err := a.getBatch(id)
		if err != nil {
			return a.e.fail(a.cmd, err)
		}
		c := b.RequestCounts
		fmt.Fprintf(a.e.stderr, "%s %s: %d of %d done, %d failed (%s)\n", b.ID, b.Status, c.Completed+c.Failed, c.Total, c.Failed, time.Since(start).Round(time.Second))
		switch b.Status {
		case "completed":
			return a.print(b.raw)
		case "failed", "cancelled", "expired":
			if b.Errors != nil {
				for _, le := range b.Errors.Data {
					line := ""
					if le.Line != nil {
						line = fmt.Sprintf("line %d: ", *le.Line)
					}
					fmt.Fprintf(a.e.stderr, "embedctl %s: %s%s: %s\n", a.cmd, line, le.Code, le.Message)
				}
			}
			a.print(b.raw)
			return 1
		}
		select {
		case <-time.After(every):
		case <-a.e.ctx.Done():
			return a.e.fail(a.cmd, a.e.ctx.Err())
		}
	}
}

// dlFlags are where download puts the files.
type dlFlags struct{ out, errs *string }

func downloadFlags(fs *flag.FlagSet) dlFlags {
	return dlFlags{
		out:  fs.String("o", "-", "write the output file to `path` (- for stdout)"),
		errs: fs.String("errors", "", "write the error file, if any, to `path`"),
	}
}

func batchDownload(e *env, a *batchAPI, args []string) int {
	dl := downloadFlags(a.fs)
	pos, code := a.parse(args, 1, "ID")
	if pos == nil {
		return code
	}
	return a.download(pos[0], dl)
}

// download writes batch id's output and error files.
func (a *batchAPI) download(id string, dl dlFlags) int {
	b, err := a.getBatch(id)
	if err != nil {
		return a.e.fail(a.cmd, err)
	}
	if b.OutputFileID == "" && b.ErrorFileID == "" {
		return a.e.fail(a.cmd, fmt.Errorf("batch %s is %s and has no output yet", id, b.Status))
	}
	for _, f := range []struct{ id, path string }{{b.OutputFileID, *dl.out}, {b.ErrorFileID, *dl.errs}} {
		if f.id == "" || f.path == "" {
			continue
		}
		if err := a.fetch(f.id, f.path); err != nil {
			return a.e.fail(a.cmd, err)
		}
	}
	return 0
}

// fetch streams file id's content to path ("-": stdout).
func (a *batchAPI) fetch(id, path string) error {
	body, err := a.do("GET", "/v1/files/"+url.PathEscape(id)+"/content", "", nil, nil, true)
	if err != nil {
		return err
	}
	defer body.Close()
	if path == "-" {
		_, err = io.Copy(a.e.stdout, body)
	} else {
		var f *os.File
		if f, err = os.Create(path); err != nil {
			return err
		}
		_, err = io.Copy(f, body)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("downloading %s: %w", id, err)
	}
	return nil
}
