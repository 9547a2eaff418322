package deploy

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/embedd/embedd/client"
	"github.com/embedd/embedd/models"
	embeddv1 "github.com/embedd/embedd/proto/embedd/v1"
)

// testModel is the folder of the test model of scripts/setup.sh.
func testModel(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".cache", "models", models.DefaultModelID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Skipf("the test model is missing (run scripts/setup.sh): %v", err)
	}
	return dir
}

// localPod is a workload's pod laid out on this machine: its volumes as
// folders under root, its addresses on a loopback host of its own.
type localPod struct {
	root, host string
	mounts     []string // mount paths, longest first
}

// path maps a path in the container to this machine.
func (lp localPod) path(p string) string {
	for _, m := range lp.mounts {
		if p == m || strings.HasPrefix(p, m+"/") {
			return lp.root + p
		}
	}
	return p
}

// value maps an argument or variable of the container: a path on its
// volumes moves under root, and 0.0.0.0 (every interface) becomes the
// pod's loopback host, keeping the port.
func (lp localPod) value(s string) string {
	if flag, v, ok := strings.Cut(s, "="); ok && strings.HasPrefix(flag, "-") {
		return flag + "=" + lp.value(v)
	}
	return lp.path(strings.ReplaceAll(s, "0.0.0.0:", lp.host+":"))
}

// words maps each word of a shell command as value does.
func (lp localPod) words(s string) string {
	ws := strings.Fields(s)
	for i, w := range ws {
		ws[i] = lp.value(w)
	}
	return strings.Join(ws, " ")
}

// file maps a config file the same way: quoted paths on the volumes and
// 0.0.0.0 addresses.
func (lp localPod) file(s string) string {
	pairs := []string{`"0.0.0.0:`, `"` + lp.host + ":"}
	for _, m := range lp.mounts {
		pairs = append(pairs, `"`+m+`/`, `"`+lp.root+m+`/`, `"`+m+`"`, `"`+lp.root+m+`"`)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// newLocalPod lays the container's volume mounts out under root, on a
// loopback host of its own.
func newLocalPod(root string, c corev1.Container) localPod {
	lp := localPod{root: root, host: fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))}
	for _, m := range c.VolumeMounts {
		lp.mounts = append(lp.mounts, m.MountPath)
	}
	slices.SortFunc(lp.mounts, func(a, b string) int { return len(b) - len(a) })
	return lp
}

// layOut creates the workload's volumes, as the kubelet would: ConfigMap
// volumes hold their keys, the models volume holds the test model at each
// model path the config names, the others are empty. It returns the pod,
// its args and environment, and the config as the pod sees it.
func layOut(t *testing.T, w workload) (localPod, []string, []string) {
	t.Helper()
	return layOutAt(t, w, t.TempDir())
}

// layOutAt is layOut with the volumes under root, where another pod's may
// already be (pods of one pipeline share the work volume).
func layOutAt(t *testing.T, w workload, root string) (localPod, []string, []string) {
	t.Helper()
	c := w.container(t)
	lp := newLocalPod(root, c)
	for _, m := range c.VolumeMounts {
		dir := lp.root + m.MountPath
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_, v := w.mountOf(t, m.MountPath)
		if v != nil && v.ConfigMap != nil {
			for k, data := range named[corev1.ConfigMap](t, w.b, v.ConfigMap.Name).Data {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(lp.file(data)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	model := testModel(t)
	for _, m := range w.serverConfig(t).Models {
		p := lp.path(m.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); err == nil {
			continue // laid out by an earlier pod
		}
		if err := os.Symlink(model, p); err != nil {
			t.Fatal(err)
		}
	}
	ort, err := models.FindORTLibrary("")
	if err != nil {
		t.Skipf("no ONNX Runtime (run scripts/setup.sh): %v", err)
	}
	env := w.podEnv(t)
	for k, v := range env {
		env[k] = lp.value(v)
	}
	env["ORT_LIB"] = ort // the image's library, at its place here
	var envList []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		envList = append(envList, k+"="+env[k])
	}
	var args []string
	for _, a := range c.Args {
		args = append(args, lp.value(a))
	}
	return lp, args, envList
}

// exercise makes calls of every kind to p (embeddings twice, so the cache
// hits; models; a collection, records and a search) and returns its
// /metrics page, read with the API key.
func exercise(t *testing.T, p *proc, apiKey string) string {
	t.Helper()
	var opts []client.Option
	if apiKey != "" {
		opts = append(opts, client.WithAPIKey(apiKey))
	}
	c, err := client.Dial(background, p.grpc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 2 {
		if _, err := c.Embed(background, []string{"hello world", "metrics for the dashboard"}, client.EmbedOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ListModels(background); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateCollection(background, &embeddv1.CreateCollectionRequest{Name: "exercise", Dimension: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upsert(background, &embeddv1.UpsertRequest{Collection: "exercise", Records: []*embeddv1.Record{{Id: "a", Vector: []float32{1, 0}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Search(background, &embeddv1.SearchRequest{Collection: "exercise", K: 1,
		Queries: []*embeddv1.Query{{Query: &embeddv1.Query_Vector{Vector: &embeddv1.Embedding{Values: []float32{1, 1}}}}}}); err != nil {
		t.Fatal(err)
	}
	code, page := p.get(t, "/metrics", apiKey)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, page)
	}
	return page
}

// TestPodTemplatesRun runs the CPU pods of the manifests as local
// processes of the real binary: the container's args (parsed by embedd's
// own flags), its environment (the image's ENV, the manifest's env, the
// API keys from the Secret), the config from the ConfigMap and the test
// model on the models volume. Each must pass its startup probe (the model
// load) on the manifest's port, then liveness and readiness; the API keys
// must be in force; /metrics must have the series the autoscaler's rule
// reads; SIGTERM must end it with status 0 within the grace period.
func TestPodTemplatesRun(t *testing.T) {
	for _, w := range workloads(t) {
		if strings.HasPrefix(w.name, "gpu") {
			continue // needs CUDA; TestPodTemplates checks it against the loader
		}
		t.Run(w.name, func(t *testing.T) {
			lp, args, env := layOut(t, w)
			c := w.container(t)
			p := startProc(t, env, args...)
			if want := fmt.Sprintf("%s:%d", lp.host, w.port(t, "http")); p.http != want {
				t.Fatalf("embedd serves HTTP on %s, the probes ask %s", p.http, want)
			}
			sp := c.StartupProbe
			p.waitFor(t, sp.HTTPGet.Path, time.Duration(sp.PeriodSeconds*sp.FailureThreshold)*time.Second)
			for _, probe := range []string{c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path} {
				if code, body := p.get(t, probe, ""); code != http.StatusOK {
					t.Errorf("%s: %d %q", probe, code, body)
				}
			}
			key := strings.Split(w.podEnv(t)["EMBEDD_API_KEYS"], ",")[0]
			if code, _ := p.get(t, "/metrics", ""); code != http.StatusUnauthorized {
				t.Errorf("/metrics without the Secret's key: %d, want 401", code)
			}
			page := exercise(t, p, key)
			for _, name := range adapterSeries(t) {
				if err := hasSeries(page, name); err != nil {
					t.Errorf("the autoscaler's series: %v", err)
				}
			}
			if code := p.stop(t, time.Duration(*w.pod.Spec.TerminationGracePeriodSeconds)*time.Second); code != 0 {
				t.Errorf("exit status %d after SIGTERM, want 0", code)
			}
		})
	}
}
