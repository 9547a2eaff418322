// Command embedd is the embedding server and its batch tools in one binary.
//
//	embedd serve [flags]             the gRPC and HTTP server, until SIGINT/SIGTERM
//	embedd config check FILE         validate a server config without starting
//	embedd embed [flags] [TEXT...]   texts (arguments, or lines on stdin) → JSON lines with vectors
//	embedd tokenize [flags]          lines on stdin → JSON lines {"ids": [...]}
//	embedd import [flags] C FILE     stream JSONL or .npy into collection C (server stopped)
//	embedd export [flags] C          collection C → JSONL (works beside a running server)
//	embedd repair [flags] C          salvage collection C's damaged write-ahead log (server stopped)
//	embedd job KIND [flags] INPUT    batch jobs: embed, search, pairs, dedup, merge (resumable, sharded)
//	embedd verify [flags] [C...]     check collections against their checksums (works beside a server)
//
// Without --config every command uses the default model that
// scripts/setup.sh prepares; --model picks a model by id.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: embedd <command> [flags]

commands:
  serve     serve gRPC and the OpenAI-compatible HTTP endpoint until SIGINT/SIGTERM
  config    "config check FILE" validates a server config
  embed     embed texts given as arguments, or one per line on stdin; prints JSON lines
  tokenize  tokenize lines from stdin; prints JSON lines {"ids": [...]}
  import    stream a JSONL or .npy file into a collection (server stopped)
  export    write a collection as JSONL (works while the server runs)
  repair    salvage a collection whose write-ahead log is damaged (server stopped)
  job       batch jobs over files: embed, search, pairs, dedup, merge (resumable, sharded)
  verify    check collections' files against their checksums (works while the server runs)

run "embedd <command> -h" for a command's flags
`

// run is main without the process: it returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveCmd(args[1:], stderr)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "import":
		return importCmd(args[1:], stdout, stderr)
	case "export":
		return exportCmd(args[1:], stdout, stderr)
	case "repair":
		return repairCmd(args[1:], stdout, stderr)
	case "verify":
		return verifyCmd(args[1:], stdout, stderr)
	case "job":
		return jobCmd(args[1:], stdin, stdout, stderr)
	case "embed":
		return embedCmd(args[1:], stdin, stdout, stderr)
	case "tokenize":
		return tokenizeCmd(args[1:], stdin, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "embedd: unknown command %q\n%s", args[0], usage)
	return 2
}
