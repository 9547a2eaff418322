package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the embedd binary the tests build.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "embedd-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// embeddBinary builds cmd/embedd, once per test binary, and returns its
// path: the pods of the manifests and the stand-ins run the real thing.
func embeddBinary(t testing.TB) string {
	t.Helper()
	path := filepath.Join(binDir, "embedd")
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", path, "github.com/embedd/embedd/cmd/embedd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/embedd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return path
}

// lockedBuffer is a bytes.Buffer safe for one writer and many readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running embedd process.
type proc struct {
	cmd        *exec.Cmd
	grpc, http string // the addresses it listens on, from its log
	logs       *lockedBuffer
	done       chan struct{} // closed when it has exited
	exit       int           // its exit status, once done
}

// startProc runs the embedd binary with args and, when env is not nil,
// exactly that environment (else the test's), and returns once it logs
// the addresses it listens on (before its models load). The process is
// killed when the test ends, unless it has exited.
func startProc(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(embeddBinary(t), args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &lockedBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stderr, p.logs))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line struct{ Msg, GRPC, HTTP string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "embedd: listening" {
				addrs <- [2]string{line.GRPC, line.HTTP}
			}
		}
		io.Copy(io.Discard, stderr) // after a very long line
		cmd.Wait()
		p.exit = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("embedd %v logs:\n%s", args, p.logs)
		}
	})
	select {
	case a := <-addrs:
		p.grpc, p.http = a[0], a[1]
	case <-p.done:
		t.Fatalf("embedd %v exited with %d before listening:\n%s", args, p.exit, p.logs)
	case <-time.After(time.Minute):
		t.Fatalf("embedd %v did not listen within a minute:\n%s", args, p.logs)
	}
	return p
}

// runToEnd runs the embedd binary (or, when bin is not empty, that
// program) with exactly env and args until it exits, for at most two
// minutes, and returns its exit status and its output; an error when it
// could not run or ran too long. It is safe to call from any goroutine.
func runToEnd(t testing.TB, bin string, env []string, args ...string) (int, string, error) {
	t.Helper()
	if bin == "" {
		bin = embeddBinary(t)
	}
	ctx, cancel := context.WithTimeout(background, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return -1, string(out), fmt.Errorf("%s %q still runs after two minutes:\n%s", bin, args, out)
	}
	if _, exited := errors.AsType[*exec.ExitError](err); err != nil && !exited {
		return -1, string(out), err
	}
	return cmd.ProcessState.ExitCode(), string(out), nil
}

// get fetches path from p's HTTP address with an API key (if not empty)
// and returns the status code and body.
func (p *proc) get(t testing.TB, path, apiKey string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+p.http+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// waitFor polls path every 50ms until it answers 200, as a probe does, and
// fails the test after within or when the process exits.
func (p *proc) waitFor(t testing.TB, path string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := p.get(t, path, "")
		if code == http.StatusOK {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("embedd exited with %d while %s answered %d %q:\n%s", p.exit, path, code, body, p.logs)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers %d %q after %v:\n%s", path, code, body, within, p.logs)
		}
	}
}

// stop sends SIGTERM, as the kubelet does, and returns the exit status,
// failing the test when the process outlives within (when the kubelet
// would SIGKILL it).
func (p *proc) stop(t testing.TB, within time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.exit
	case <-time.After(within):
		t.Fatalf("embedd still runs %v after SIGTERM:\n%s", within, p.logs)
		return -1
	}
}

// kill ends the process at once (SIGKILL: a node or pod lost).
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// startServes runs `embedd serve` on each host (ports chosen by the
// system) with the test model, data in a temporary folder and the extra
// config fields, and waits until all are ready.
func startServes(t testing.TB, extra map[string]any, hosts ...string) []*proc {
	t.Helper()
	var ps []*proc
	for _, host := range hosts {
		cfg := map[string]any{"grpc_addr": host + ":0", "http_addr": host + ":0", "data_dir": t.TempDir()}
		for k, v := range extra {
			cfg[k] = v
		}
		data, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "embedd.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, startProc(t, nil, "serve", "--config", path))
	}
	for _, p := range ps {
		p.waitFor(t, "/readyz", time.Minute)
	}
	return ps
}

// background is the context of the calls the tests make.
var background = context.Background()
