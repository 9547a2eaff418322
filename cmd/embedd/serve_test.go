package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/embedd/embedd/device"
	"github.com/embedd/embedd/models"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// buildEmbedd builds the embedd binary into a temporary folder.
func buildEmbedd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "embedd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serverProc is a running embedd serve process.
type serverProc struct {
	cmd  *exec.Cmd
	conn *grpc.ClientConn
	logs chan string
	http string // the HTTP address
}

// startServe runs "embedd serve" on loopback with dataDir and waits until
// it is SERVING.
func startServe(t *testing.T, bin, dataDir string, args ...string) *serverProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "EMBEDD_DATA_DIR="+dataDir)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, httpAddr := make(chan string, 1), make(chan string, 1)
	logs := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			json.Unmarshal(sc.Bytes(), &rec)
			if rec["msg"] == "embedd: listening" {
				addr <- rec["grpc"].(string)
				httpAddr <- rec["http"].(string)
			}
			select {
			case logs <- sc.Text():
			default:
			}
		}
		close(logs)
	}()
	var target string
	select {
	case target = <-addr:
	case <-time.After(time.Minute):
		t.Fatal("no listening log line within a minute")
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hc := healthpb.NewHealthClient(conn)
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err == nil && r.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("not SERVING within a minute")
		}
	}
	return &serverProc{cmd: cmd, conn: conn, logs: logs, http: <-httpAddr}
}

// TestServeShutsDownOnSIGTERM runs the real binary, embeds through it, then
// sends SIGTERM while a call is in flight: the call completes, the process
// exits 0.
func TestServeShutsDownOnSIGTERM(t *testing.T) {
	needFixtures(t)
	checkGracefulSIGTERM(t, startServe(t, buildEmbedd(t), t.TempDir()))
}

// TestServeSIGTERMWithCUDA is the same with the model on the CUDA
// execution provider, which replaces Go's signal handlers unless the server
// restores them. It needs a GPU and the provider (scripts/setup.sh --gpu).
func TestServeSIGTERMWithCUDA(t *testing.T) {
	needFixtures(t)
	modelDir := models.DefaultRegistryConfig().Models[0].Path
	rt, err := models.OpenRuntime("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := rt.NewSession(filepath.Join(modelDir, "model.onnx"), models.SessionConfig{Device: device.Device{Kind: device.CUDA}})
	s.Close()
	rt.Close()
	if err != nil {
		t.Skipf("no GPU here: the CUDA execution provider does not load: %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "cuda.json")
	os.WriteFile(cfg, []byte(`{"models": [{"id": "m", "path": "`+modelDir+`", "device": "cuda"}]}`), 0o644)
	checkGracefulSIGTERM(t, startServe(t, buildEmbedd(t), t.TempDir(), "--config", cfg))
}

// checkGracefulSIGTERM sends SIGTERM to a serving process while a call is
// in flight and checks that the call completes and the process exits 0.
func checkGracefulSIGTERM(t *testing.T, sp *serverProc) {
	t.Helper()
	ctx := context.Background()
	client := embeddv1.NewEmbeddingServiceClient(sp.conn)
	long := strings.Repeat("graceful shutdown keeps queued work ", 20)
	inflight := make(chan error, 1)
	go func() {
		_, err := client.Embed(ctx, &embeddv1.EmbedRequest{Texts: []string{long + "1", long + "2", long + "3", long + "4", long + "5", long + "6"}})
		inflight <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := sp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-inflight; err != nil {
		t.Errorf("call in flight at SIGTERM failed: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- sp.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			var all []string
			for l := range sp.logs {
				all = append(all, l)
			}
			t.Fatalf("exit: %v; logs:\n%s", err, strings.Join(all, "\n"))
		}
	case <-time.After(time.Minute):
		t.Fatal("no exit within a minute of SIGTERM")
	}
}

func TestConfigCheck(t *testing.T) {
	needFixtures(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	modelDir, _ := filepath.Abs(filepath.Join("..", "..", ".cache", "models", "minilm-l6-random"))
	os.WriteFile(good, []byte(`{"models": [{"id": "m", "path": "`+modelDir+`"}]}`), 0o644)
	if code, out, stderr := runCmd(t, "", "config", "check", good); code != 0 || !strings.Contains(out, "ok (1 models)") {
		t.Errorf("good config: exit %d %q %q", code, out, stderr)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"models": [{"id": "m", "path": "/nowhere", "workers": 0, "max_batch_tokens": -1}], "log_level": "loud"}`), 0o644)
	code, _, stderr := runCmd(t, "", "config", "check", bad)
	for _, want := range []string{"models[0].max_batch_tokens: -1 is not in [1, 1048576]", `log_level: "loud"`} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("bad config: exit %d, stderr %q lacks %q", code, stderr, want)
		}
	}
	missing := filepath.Join(dir, "missing.json")
	os.WriteFile(missing, []byte(`{"models": [{"id": "m", "path": "/nowhere"}]}`), 0o644)
	if code, _, stderr := runCmd(t, "", "config", "check", missing); code != 1 || !strings.Contains(stderr, `models[0].path: "/nowhere" has no tokenizer.json`) {
		t.Errorf("missing folder: exit %d %q", code, stderr)
	}
	if code, _, _ := runCmd(t, "", "config"); code != 2 {
		t.Errorf("config without check: exit %d, want 2", code)
	}
}
