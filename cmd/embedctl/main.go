// Command embedctl is the command-line client of an embedd server.
//
//	embedctl [global flags] <command> [flags] [args]
//
// Global flags: --addr TARGET (HOST:PORT, or dns:///HOST:PORT to balance
// round-robin over every address of the name; default $EMBEDD_ADDR, else
// 127.0.0.1:50051), --api-key KEY (default $EMBEDD_API_KEY), --tls-ca FILE
// or --tls (TLS with the system's roots), --timeout D (each call; streams
// are not bounded). Output is JSON lines unless a command prints a table;
// errors name the call, the gRPC status code and the server's message.
// Exit status: 0 done, 1 failed (or health not SERVING), 2 bad usage.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode"

	"google.golang.org/grpc/status"

	"github.com/embedd/embedd/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: embedctl [global flags] <command> [flags] [args]

commands:
  embed [TEXT...]                 embed texts (arguments, or lines of stdin) → {"index","embedding"} lines
  tokenize [TEXT...]              token ids of texts (arguments, or lines of stdin) → {"ids"} lines
  models                          the server's models (a table; --json for JSON lines)
  health                          the server's health; exit status 0 only when SERVING
  collections create NAME (--dim N | --model ID) [--metric cosine|dot|l2]
  collections drop NAME...
  collections list
  collections compact NAME...     reclaim the space of deleted and replaced records
  upsert COLLECTION < records     {"id","vector"|"text","metadata"} lines, sent in batches
  delete COLLECTION ID...
  get COLLECTION ID...
  search COLLECTION (--text T | --vector '[...]') [--k 10] [--filter key=value]...
  batches submit FILE [--wait] | get ID | list | cancel ID | watch ID | download ID
                                  OpenAI's Batch API over HTTP (--http HOST:PORT); see "batches -h"

upsert, delete, get and search take --shards A,B,... for a collection split over servers by
id (search also --partial); see their -h

run "embedctl <command> -h" for a command's flags

global flags:
`

// env is what every command gets: the streams, the global settings and a
// context (in main, it ends on SIGINT or SIGTERM).
type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer

	addr, apiKey, tlsCA string
	tls                 bool
	timeout             time.Duration
}

// command runs one subcommand with its arguments and returns the exit code.
type command func(e *env, args []string) int

var commands = map[string]command{
	"embed":       embedCmd,
	"tokenize":    tokenizeCmd,
	"models":      modelsCmd,
	"health":      healthCmd,
	"collections": collectionsCmd,
	"upsert":      upsertCmd,
	"delete":      deleteCmd,
	"get":         getCmd,
	"search":      searchCmd,
	"batches":     batchesCmd,
}

// run is main without the process and its signals: it returns the exit
// code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdin, stdout, stderr)
}

// runContext is run with a context that ends the command early.
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("embedctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&e.addr, "addr", "", "server `host:port`, or dns:///host:port to balance round-robin over its addresses (default $EMBEDD_ADDR, else 127.0.0.1:50051)")
	fs.StringVar(&e.apiKey, "api-key", "", "API `key`, sent as authorization: Bearer KEY (default $EMBEDD_API_KEY)")
	fs.StringVar(&e.tlsCA, "tls-ca", "", "connect over TLS, trusting the CA certificates in `file` (PEM)")
	fs.BoolVar(&e.tls, "tls", false, "connect over TLS, trusting the system's CA certificates")
	fs.DurationVar(&e.timeout, "timeout", 30*time.Second, "bound on each call, retries included (streams are not bounded); 0 for none")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if e.addr == "" {
		e.addr = cmp.Or(os.Getenv("EMBEDD_ADDR"), "127.0.0.1:50051")
	}
	if e.apiKey == "" {
		e.apiKey = os.Getenv("EMBEDD_API_KEY")
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	name := fs.Arg(0)
	if name == "help" {
		fs.SetOutput(stdout)
		fmt.Fprint(stdout, usage)
		fs.PrintDefaults()
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "embedctl: unknown command %q; run \"embedctl help\" for the list\n", name)
		return 2
	}
	return cmd(e, fs.Args()[1:])
}

// dial connects to the server with the global settings.
func (e *env) dial() (*client.Client, error) {
	return client.Dial(e.ctx, e.addr, e.options()...)
}

// options are the client options of the global settings.
func (e *env) options() []client.Option {
	opts := []client.Option{client.WithTimeout(e.timeout)}
	switch {
	case e.tlsCA != "":
		opts = append(opts, client.WithTLSCAFile(e.tlsCA))
	case e.tls:
		opts = append(opts, client.WithTLSConfig(nil))
	}
	if e.apiKey != "" {
		opts = append(opts, client.WithAPIKey(e.apiKey))
	}
	return opts
}

// shardsUsage documents the --shards flag of the commands that take it.
const shardsUsage = "comma-separated shard `targets` in shard order (instead of --addr): records go to shard client.ShardOf(id), searches ask every shard and merge"

// connectShards dials the comma-separated targets as shards, reporting a
// failure as cmd's; the caller closes the result.
func (e *env) connectShards(cmd, list string) (*client.Shards, int) {
	targets := strings.Split(list, ",")
	for i, t := range targets {
		if targets[i] = strings.TrimSpace(t); targets[i] == "" {
			return nil, e.usageErr(cmd, "--shards %q has an empty target", list)
		}
	}
	s, err := client.DialShards(e.ctx, targets, e.options()...)
	if err != nil {
		return nil, e.fail(cmd, err)
	}
	return s, 0
}

// connect dials, reporting a failure as cmd's; the caller closes the client.
func (e *env) connect(cmd string) (*client.Client, int) {
	c, err := e.dial()
	if err != nil {
		return nil, e.fail(cmd, err)
	}
	return c, 0
}

// fail prints err as cmd's error and returns exit code 1. A gRPC status is
// shown as its code and message: "INVALID_ARGUMENT: texts[3]: ...".
func (e *env) fail(cmd string, err error) int {
	fmt.Fprintf(e.stderr, "embedctl %s: %s\n", cmd, describe(err))
	return 1
}

// usageErr prints a usage problem of cmd and returns exit code 2.
func (e *env) usageErr(cmd, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "embedctl %s: %s\n", cmd, fmt.Sprintf(format, args...))
	return 2
}

// describe renders err for people: the client's call name, then a gRPC
// status as CODE: message, else the error as it is.
func describe(err error) string {
	if pe, ok := errors.AsType[*placedError](err); ok {
		return pe.where + ": " + describe(pe.err)
	}
	var gs interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &gs) {
		return err.Error()
	}
	st := gs.GRPCStatus()
	// The client's errors read "embedd/client: Call: rpc error: ...".
	prefix := ""
	if msg, ok := strings.CutPrefix(err.Error(), "embedd/client: "); ok {
		if call, _, ok := strings.Cut(msg, ": "); ok && !strings.Contains(call, " ") {
			prefix = call + ": "
		}
	}
	return prefix + codeName(st.Code().String()) + ": " + st.Message()
}

// codeName turns a codes.Code's String ("InvalidArgument") into its
// canonical name (INVALID_ARGUMENT).
func codeName(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// parseInterspersed parses fs from args, allowing flags after positional
// arguments ("create NAME --dim 4"), and returns the positional ones.
// After "--" everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlagSet returns a flag set for cmd that reports to e.stderr.
func (e *env) newFlagSet(cmd, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: embedctl %s\n", synopsis)
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintln(e.stderr, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseExit is the exit code for a flag parsing error: 0 for -h, else 2.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
