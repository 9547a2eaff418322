package deploy

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/embedd/embedd/server"
)

// kinds are the API types the manifests may use, by apiVersion/kind.
var kinds = map[string]func() any{
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/PersistentVolumeClaim":               func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

// decodeStrict decodes one manifest into its API type; unknown or
// duplicate fields, and kinds not in kinds, are errors.
func decodeStrict(doc []byte) (any, error) {
	var tm v1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	mk, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q is not a type these tests know", tm.APIVersion, tm.Kind)
	}
	obj := mk()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

// documents splits a YAML stream into its documents.
func documents(data []byte) [][]byte {
	var docs [][]byte
	for d := range strings.SplitSeq(string(data), "\n---\n") {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// adapterValues is the part of prometheus-adapter's Helm values that
// deploy/k8s/prometheus-adapter/values.yaml sets.
type adapterValues struct {
	Rules struct {
		Default bool          `json:"default"`
		Custom  []adapterRule `json:"custom"`
	} `json:"rules"`
}

// adapterRule is one rule of prometheus-adapter's config.
type adapterRule struct {
	SeriesQuery string `json:"seriesQuery"`
	Resources   struct {
		Overrides map[string]struct {
			Resource string `json:"resource"`
		} `json:"overrides"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as"`
	} `json:"name"`
	MetricsQuery string `json:"metricsQuery"`
}

func readAdapterRules(t *testing.T) []adapterRule {
	t.Helper()
	data, err := os.ReadFile("k8s/prometheus-adapter/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v adapterValues
	if err := yaml.UnmarshalStrict(data, &v); err != nil {
		t.Fatalf("prometheus-adapter/values.yaml: %v", err)
	}
	return v.Rules.Custom
}

// TestManifestsDecodeStrictly reads every YAML file under k8s/ as what it
// is: kustomizations as kustomize's type, the adapter's values as its
// rules, everything else (patches included) as Kubernetes API objects,
// rejecting unknown fields.
func TestManifestsDecodeStrictly(t *testing.T) {
	n := 0
	err := filepath.WalkDir("k8s", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case d.Name() == "kustomization.yaml":
			var k kustypes.Kustomization
			if err := yaml.UnmarshalStrict(data, &k); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		case path == filepath.Join("k8s", "prometheus-adapter", "values.yaml"):
			readAdapterRules(t)
		default:
			for _, doc := range documents(data) {
				if _, err := decodeStrict(doc); err != nil {
					t.Errorf("%s: %v", path, err)
				}
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("only %d manifests found under k8s/", n)
	}
	// The decoding is strict: a misspelt field fails.
	if _, err := decodeStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n")); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Errorf("a Deployment with spec.replica decoded: %v", err)
	}
}

// built is the output of one kustomization, decoded.
type built struct {
	objs []any
}

// build runs kustomize on k8s/dir and decodes the result strictly.
func build(t *testing.T, dir string) built {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join("k8s", dir))
	if err != nil {
		t.Fatalf("kustomize build k8s/%s: %v", dir, err)
	}
	var b built
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decodeStrict(doc)
		if err != nil {
			t.Fatalf("k8s/%s: %v", dir, err)
		}
		b.objs = append(b.objs, obj)
	}
	return b
}

// all returns the objects of type T.
func all[T any](b built) []T {
	var out []T
	for _, o := range b.objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// named returns the object of type *T named name, failing without one.
func named[T any, PT interface {
	*T
	GetName() string
}](t *testing.T, b built, name string) PT {
	t.Helper()
	for _, o := range all[PT](b) {
		if o.GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %q", zero, name)
	return nil
}

// workload is a pod template of a build and what it needs.
type workload struct {
	name       string
	b          built
	pod        corev1.PodTemplateSpec
	claims     []corev1.PersistentVolumeClaim // a StatefulSet's volumeClaimTemplates
	dockerfile string                         // of the image
}

// container returns the embedd container.
func (w workload) container(t *testing.T) corev1.Container {
	t.Helper()
	for _, c := range w.pod.Spec.Containers {
		if c.Name == "embedd" {
			return c
		}
	}
	t.Fatalf("%s: no container named embedd", w.name)
	return corev1.Container{}
}

// workloads are the pod templates of the kustomizations.
func workloads(t *testing.T) []workload {
	t.Helper()
	cpu, gpu, sharded := build(t, "overlays/cpu"), build(t, "overlays/gpu"), build(t, "sharded")
	sts := named[appsv1.StatefulSet](t, sharded, "embedd-shard")
	return []workload{
		{"cpu Deployment", cpu, named[appsv1.Deployment](t, cpu, "embedd").Spec.Template, nil, "../Dockerfile"},
		{"gpu Deployment", gpu, named[appsv1.Deployment](t, gpu, "embedd").Spec.Template, nil, "../Dockerfile.cuda"},
		{"shard StatefulSet", sharded, sts.Spec.Template, sts.Spec.VolumeClaimTemplates, "../Dockerfile"},
	}
}

// imageEnv reads the ENV instructions of a Dockerfile: the environment
// the image gives embedd before the manifest's env.
func imageEnv(t *testing.T, dockerfile string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	joined := strings.ReplaceAll(string(data), "\\\n", " ")
	sc := bufio.NewScanner(strings.NewReader(joined))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "ENV ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("%s: ENV %q is not KEY=VALUE", dockerfile, kv)
			}
			env[k] = v
		}
	}
	return env
}

// podEnv is the environment of the embedd container: the image's, then
// the manifest's, with secretKeyRef values read from the build's Secrets.
func (w workload) podEnv(t *testing.T) map[string]string {
	t.Helper()
	env := imageEnv(t, w.dockerfile)
	for _, e := range w.container(t).Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s := named[corev1.Secret](t, w.b, ref.Name)
			v, ok := s.StringData[ref.Key]
			if !ok {
				t.Fatalf("%s: env %s: Secret %s has no key %q", w.name, e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		default:
			t.Fatalf("%s: env %s: only values and secretKeyRef are checked", w.name, e.Name)
		}
	}
	return env
}

// configArg is the --config argument of the container's args.
func (w workload) configArg(t *testing.T) string {
	t.Helper()
	args := w.container(t).Args
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v
		}
		if a == "--config" && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("%s: args %q have no --config FILE", w.name, args)
	return ""
}

// mountOf returns the volume mount that holds path in the container and
// the volume.
func (w workload) mountOf(t *testing.T, path string) (corev1.VolumeMount, *corev1.Volume) {
	t.Helper()
	var best corev1.VolumeMount
	for _, m := range w.container(t).VolumeMounts {
		if (path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/")) && len(m.MountPath) > len(best.MountPath) {
			best = m
		}
	}
	if best.Name == "" {
		t.Fatalf("%s: %s is on no volume (the root file system is read-only)", w.name, path)
	}
	for i, v := range w.pod.Spec.Volumes {
		if v.Name == best.Name {
			return best, &w.pod.Spec.Volumes[i]
		}
	}
	for _, c := range w.claims {
		if c.Name == best.Name {
			return best, nil // a volumeClaimTemplate
		}
	}
	t.Fatalf("%s: volume mount %s names no volume", w.name, best.Name)
	return best, nil
}

// configFile returns the config file the container reads, from its
// ConfigMap.
func (w workload) configFile(t *testing.T) string {
	t.Helper()
	path := w.configArg(t)
	m, v := w.mountOf(t, path)
	if v == nil || v.ConfigMap == nil {
		t.Fatalf("%s: --config %s is not on a ConfigMap volume", w.name, path)
	}
	cm := named[corev1.ConfigMap](t, w.b, v.ConfigMap.Name)
	key := strings.TrimPrefix(path, m.MountPath+"/")
	data, ok := cm.Data[key]
	if !ok {
		t.Fatalf("%s: ConfigMap %s has no key %q", w.name, cm.Name, key)
	}
	return data
}

// serverConfig loads the config as the pod's embedd does: the file, read
// strictly by the real loader, then the environment, then the defaults.
func (w workload) serverConfig(t *testing.T) server.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "embedd.json")
	if err := os.WriteFile(path, []byte(w.configFile(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.ReadConfig(path)
	if err != nil {
		t.Fatalf("%s: %v", w.name, err)
	}
	env := w.podEnv(t)
	cfg = cfg.ApplyEnv(func(k string) string { return env[k] }).Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s: the config as the pod sees it is not valid: %v", w.name, err)
	}
	return cfg
}

// port returns the container port named name, failing without one.
func (w workload) port(t *testing.T, name string) int32 {
	t.Helper()
	for _, p := range w.container(t).Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("%s: no container port named %q", w.name, name)
	return 0
}

func addrPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// envNamesRead are the variables the config loader reads.
func envNamesRead() map[string]bool {
	read := map[string]bool{}
	server.Config{}.ApplyEnv(func(k string) string { read[k] = true; return "" })
	return read
}

// TestPodTemplates checks each workload against the server's config
// loader: the config file validates as the pod sees it; the listen ports
// are the container ports; the probes ask /readyz (startup, covering the
// model load, and readiness) and /healthz (liveness) on the HTTP port;
// the grace period outlasts preStop plus shutdown_grace; every variable
// is one embedd reads; every model and the data are on volumes; the gpu
// overlay asks for a GPU.
func TestPodTemplates(t *testing.T) {
	read := envNamesRead()
	ws := workloads(t)
	for _, w := range ws {
		t.Run(w.name, func(t *testing.T) {
			c := w.container(t)
			// TestPodTemplatesRun runs the CPU pods' args through embedd's
			// flags; the GPU pod, which it cannot run, must use the same.
			if !slices.Equal(c.Args, ws[0].container(t).Args) {
				t.Errorf("args %q differ from the cpu Deployment's %q", c.Args, ws[0].container(t).Args)
			}
			cfg := w.serverConfig(t)
			if got, want := addrPort(t, cfg.GRPCAddr), w.port(t, "grpc"); got != want {
				t.Errorf("grpc_addr port %d, container port grpc %d", got, want)
			}
			if got, want := addrPort(t, cfg.HTTPAddr), w.port(t, "http"); got != want {
				t.Errorf("http_addr port %d, container port http %d", got, want)
			}
			for _, p := range []struct {
				what  string
				probe *corev1.Probe
				path  string
			}{{"startup", c.StartupProbe, "/readyz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("no HTTP %s probe", p.what)
					continue
				}
				if g := p.probe.HTTPGet; g.Path != p.path || g.Port.String() != "http" {
					t.Errorf("%s probe asks %s on port %s, want %s on http", p.what, g.Path, g.Port.String(), p.path)
				}
			}
			if sp := c.StartupProbe; sp != nil && sp.PeriodSeconds*sp.FailureThreshold < 120 {
				t.Errorf("startup probe allows %ds for the model load, want at least 120s", sp.PeriodSeconds*sp.FailureThreshold)
			}
			var preStop int64
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				preStop = c.Lifecycle.PreStop.Sleep.Seconds
			}
			need := time.Duration(preStop)*time.Second + time.Duration(cfg.ShutdownGrace)
			if g := w.pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= need {
				t.Errorf("terminationGracePeriodSeconds %v does not exceed preStop %ds + shutdown_grace %v", g, preStop, time.Duration(cfg.ShutdownGrace))
			}
			for _, e := range c.Env {
				if !read[e.Name] {
					t.Errorf("env %s is not a variable embedd reads", e.Name)
				}
			}
			for _, m := range cfg.Models {
				if mnt, _ := w.mountOf(t, m.Path); !mnt.ReadOnly {
					t.Errorf("model %s at %s: its volume is not mounted read-only", m.ID, m.Path)
				}
			}
			if mnt, _ := w.mountOf(t, cfg.DataDir); mnt.ReadOnly {
				t.Errorf("data_dir %s is on a read-only mount", cfg.DataDir)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %v: want a CPU request and a memory limit", c.Resources)
			}
			gpus := c.Resources.Limits[corev1.ResourceName("nvidia.com/gpu")]
			if wantGPU := strings.HasPrefix(w.name, "gpu"); wantGPU != (gpus.Value() == 1) {
				t.Errorf("nvidia.com/gpu limit %v (gpu overlay: want 1, else none)", gpus.String())
			}
			if strings.HasPrefix(w.name, "gpu") {
				if !strings.HasSuffix(c.Image, ":cuda") || cfg.Models[0].Device != "cuda" {
					t.Errorf("gpu overlay: image %s, model device %q; want the :cuda image and device cuda", c.Image, cfg.Models[0].Device)
				}
			}
		})
	}
}

// selects reports whether a selector picks the pod template's labels.
func selects(t *testing.T, sel *v1.LabelSelector, pod corev1.PodTemplateSpec) bool {
	t.Helper()
	s, err := v1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(pod.Labels))
}

// TestServicesAndBudgets: the Services select the pods and reach named
// container ports; the gRPC one is headless, so DNS lists every pod; the
// disruption budgets select the pods; the autoscaler scales the Deployment
// on the metric the adapter rule serves (a target the queue can reach
// before it is full), with CPU besides and a scale-down
// stabilisation window.
func TestServicesAndBudgets(t *testing.T) {
	for _, w := range workloads(t) {
		t.Run(w.name, func(t *testing.T) {
			var headless int
			for _, svc := range all[*corev1.Service](w.b) {
				if !selects(t, &v1.LabelSelector{MatchLabels: svc.Spec.Selector}, w.pod) {
					t.Errorf("Service %s does not select the pods", svc.Name)
				}
				for _, p := range svc.Spec.Ports {
					w.port(t, p.TargetPort.String())
				}
				if svc.Spec.ClusterIP == corev1.ClusterIPNone {
					headless++
				}
			}
			if headless != 1 {
				t.Errorf("%d headless Services, want 1", headless)
			}
			pdbs := all[*policyv1.PodDisruptionBudget](w.b)
			if len(pdbs) != 1 || !selects(t, pdbs[0].Spec.Selector, w.pod) {
				t.Errorf("want one PodDisruptionBudget selecting the pods, got %d", len(pdbs))
			}
		})
	}
	cpu := build(t, "overlays/cpu")
	hpa := named[autoscalingv2.HorizontalPodAutoscaler](t, cpu, "embedd")
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != named[appsv1.Deployment](t, cpu, "embedd").Name {
		t.Errorf("HPA scales %v", ref)
	}
	rules := readAdapterRules(t)
	var pods, cpuMetric bool
	for _, m := range hpa.Spec.Metrics {
		switch {
		case m.Type == autoscalingv2.PodsMetricSourceType:
			pods = slices.ContainsFunc(rules, func(r adapterRule) bool { return r.Name.As == m.Pods.Metric.Name })
			if !pods {
				t.Errorf("HPA metric %s is not served by an adapter rule", m.Pods.Metric.Name)
			}
			// The target must be reachable before the queue refuses texts.
			for _, mc := range workloads(t)[0].serverConfig(t).Models {
				if target := m.Pods.Target.AverageValue; target == nil || target.Value() >= int64(mc.QueueSize) {
					t.Errorf("HPA target %v texts waiting per pod is not below model %s's queue_size %d", target, mc.ID, mc.QueueSize)
				}
			}
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceCPU:
			cpuMetric = true
		}
	}
	if !pods || !cpuMetric {
		t.Errorf("HPA metrics %v: want a Pods metric and CPU", hpa.Spec.Metrics)
	}
	if b := hpa.Spec.Behavior; b == nil || b.ScaleDown == nil || b.ScaleDown.StabilizationWindowSeconds == nil || *b.ScaleDown.StabilizationWindowSeconds < 60 {
		t.Errorf("HPA has no scale-down stabilisation of at least 60s")
	}
}

// seriesName is the metric a PromQL series selector names.
var seriesName = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)

// adapterSeries returns the metrics the adapter rules read.
func adapterSeries(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, r := range readAdapterRules(t) {
		m := seriesName.FindStringSubmatch(r.SeriesQuery)
		if m == nil {
			t.Fatalf("seriesQuery %q names no metric", r.SeriesQuery)
		}
		if !regexp.MustCompile(r.Name.Matches).MatchString(m[1]) {
			t.Errorf("rule %q: name.matches %q does not match its series %s", r.Name.As, r.Name.Matches, m[1])
		}
		for _, l := range []string{"namespace", "pod"} {
			if r.Resources.Overrides[l].Resource != l {
				t.Errorf("rule %q does not map the %s label to the %s resource", r.Name.As, l, l)
			}
		}
		names = append(names, m[1])
	}
	return names
}

// errNoSeries says a metrics page lacks a series.
var errNoSeries = errors.New("not in /metrics")

// hasSeries reports whether the Prometheus text exposition page has a
// sample of the metric name (histograms: name_bucket, name_sum...).
func hasSeries(page, name string) error {
	for line := range strings.Lines(page) {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", name, errNoSeries)
}
