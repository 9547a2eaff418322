package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// expand substitutes $(NAME) in s from env, as the kubelet does in
// container args.
func expand(s string, env map[string]string) string {
	for _, k := range slices.Sorted(maps.Keys(env)) {
		s = strings.ReplaceAll(s, "$("+k+")", env[k])
	}
	return s
}

// flagValue returns the value of --name=V in args, failing without one.
func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	t.Fatalf("args %q have no --%s=VALUE", args, name)
	return ""
}

// volumeClaim returns the claim behind the container's mount at path.
func volumeClaim(t *testing.T, pod corev1.PodSpec, c corev1.Container, path string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != path {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.PersistentVolumeClaim != nil {
				return v.PersistentVolumeClaim.ClaimName
			}
		}
	}
	t.Fatalf("container %s mounts no claim at %s", c.Name, path)
	return ""
}

// runIndexedJob holds an Indexed Job and its merge to `embedd job`: the
// Job has as many completions as --shards, retries per index and never
// restarts a pod in place; it and the merge share the work volume. Then,
// with the volumes under root, it runs the Job's init containers, calls
// ready with the pod (to put the input in place), runs every index at once
// as a local process of the real binary (with JOB_COMPLETION_INDEX set and
// substituted as the Job controller and the kubelet do), runs the merge's
// init container (which must find the shards done) and the merge, and
// returns the merged output's path here, the pod and its environment.
func runIndexedJob(t *testing.T, b built, job, merge, root string, ready func(lp localPod, args []string)) (string, localPod, []string) {
	t.Helper()
	ij, mj := named[batchv1.Job](t, b, job), named[batchv1.Job](t, b, merge)
	w := workload{name: job + " Job", b: b, pod: ij.Spec.Template, dockerfile: "../Dockerfile"}
	c := w.container(t)
	spec := ij.Spec
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Fatalf("%s: completionMode %v, want Indexed", job, spec.CompletionMode)
	}
	n, err := strconv.Atoi(flagValue(t, c.Args, "shards"))
	if err != nil || spec.Completions == nil || int(*spec.Completions) != n || spec.Parallelism == nil || int(*spec.Parallelism) != n {
		t.Fatalf("%s: --shards %d, completions %v, parallelism %v: want them equal", job, n, spec.Completions, spec.Parallelism)
	}
	if spec.BackoffLimitPerIndex == nil || *spec.BackoffLimitPerIndex < 1 || spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: backoffLimitPerIndex %v, restartPolicy %s: want retries per index and Never", job, spec.BackoffLimitPerIndex, spec.Template.Spec.RestartPolicy)
	}
	if !strings.Contains(flagValue(t, c.Args, "job-dir"), "$(JOB_COMPLETION_INDEX)") {
		t.Errorf("%s: --job-dir does not depend on JOB_COMPLETION_INDEX: the shards would share one", job)
	}
	mergeC := mj.Spec.Template.Spec.Containers[0]
	if a, m := volumeClaim(t, ij.Spec.Template.Spec, c, "/work"), volumeClaim(t, mj.Spec.Template.Spec, mergeC, "/work"); a != m {
		t.Errorf("%s: the shards write claim %s, the merge reads %s", job, a, m)
	}

	lp, args, env := layOutAt(t, w, root)
	ready(lp, args)
	for _, ic := range ij.Spec.Template.Spec.InitContainers {
		runInit(t, newLocalPod(root, ic), ic)
	}
	// The indexes run at once, as parallelism lets them.
	embeddBinary(t) // built here, not in the goroutines
	var wg sync.WaitGroup
	codes, outs, errs := make([]int, n), make([]string, n), make([]error, n)
	for i := range n {
		idx := map[string]string{"JOB_COMPLETION_INDEX": strconv.Itoa(i)}
		var argsI []string
		for _, a := range args {
			argsI = append(argsI, expand(a, idx))
		}
		envI := append(slices.Clone(env), "JOB_COMPLETION_INDEX="+idx["JOB_COMPLETION_INDEX"])
		wg.Go(func() { codes[i], outs[i], errs[i] = runToEnd(t, "", envI, argsI...) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || codes[i] != 0 {
			t.Fatalf("%s index %d: exit %d, %v\n%s", job, i, codes[i], errs[i], outs[i])
		}
	}

	mp := newLocalPod(root, mergeC)
	for _, ic := range mj.Spec.Template.Spec.InitContainers {
		runInit(t, mp, ic)
	}
	var mergeArgs []string
	for _, a := range mergeC.Args {
		mergeArgs = append(mergeArgs, mp.value(a))
	}
	if code, out, err := runToEnd(t, "", env, mergeArgs...); err != nil || code != 0 {
		t.Fatalf("%s: exit %d, %v\n%s", merge, code, err, out)
	}
	return mp.value(flagValue(t, mergeC.Args, "out")), lp, env
}

// runInit runs an init container's sh -c script in pod lp; it must end
// (a wait must find what it waits for).
func runInit(t *testing.T, lp localPod, ic corev1.Container) {
	t.Helper()
	if len(ic.Command) != 3 || ic.Command[0] != "sh" || ic.Command[1] != "-c" {
		t.Fatalf("init container %s: command %q, want sh -c SCRIPT", ic.Name, ic.Command)
	}
	if code, out, err := runToEnd(t, "/bin/sh", nil, "-c", lp.words(ic.Command[2])); err != nil || code != 0 {
		t.Fatalf("init container %s: exit %d, %v\n%s", ic.Name, code, err, out)
	}
}

// writeTexts writes n JSONL texts of a batch job to path.
func writeTexts(t *testing.T, path string, n int) {
	t.Helper()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, `{"id": "t%d", "text": "line %d of a batch job, %s"}`+"\n", i, i, strings.Repeat("word ", i%7))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBatchJob runs the batch embedding Job and its merge (runIndexedJob)
// over a file: the merged output is byte for byte what one process writes.
func TestBatchJob(t *testing.T) {
	b := build(t, "jobs")
	var input, config string
	merged, _, env := runIndexedJob(t, b, "embedd-embed", "embedd-embed-merge", t.TempDir(), func(lp localPod, args []string) {
		input = args[len(args)-1] // mapped by layOut
		writeTexts(t, input, 60)
		w := workload{name: "embed", b: b, pod: named[batchv1.Job](t, b, "embedd-embed").Spec.Template, dockerfile: "../Dockerfile"}
		config = lp.value(w.configArg(t))
	})
	got, err := os.ReadFile(merged)
	if err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(t.TempDir(), "single.jsonl")
	if code, out, err := runToEnd(t, "", env, "job", "embed", "--config="+config, "--out="+single, "--progress=off", input); err != nil || code != 0 {
		t.Fatalf("one process: exit %d, %v\n%s", code, err, out)
	}
	want, err := os.ReadFile(single)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(got, []byte("\n")); lines != 60 || !bytes.Equal(got, want) {
		t.Errorf("merged output (%d lines, %d bytes) differs from one process's (%d bytes)", lines, len(got), len(want))
	}
}

// TestPairsPipeline runs deploy/k8s/pairs: the embedding Job and its merge,
// then the pairs Job (whose pods wait for the merged embeddings) over them
// and its merge, on one work volume: the neighbours are byte for byte what
// one `embedd job pairs` process writes for the merged embeddings.
func TestPairsPipeline(t *testing.T) {
	b := build(t, "pairs")
	root := t.TempDir()
	embeddings, _, _ := runIndexedJob(t, b, "embedd-embed", "embedd-embed-merge", root, func(lp localPod, args []string) {
		writeTexts(t, args[len(args)-1], 90)
	})
	neighbors, _, env := runIndexedJob(t, b, "embedd-pairs", "embedd-pairs-merge", root, func(lp localPod, args []string) {
		if in := args[len(args)-1]; in != embeddings {
			t.Fatalf("the pairs Job reads %s, the embed merge writes %s", in, embeddings)
		}
	})
	got, err := os.ReadFile(neighbors)
	if err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(t.TempDir(), "single.jsonl")
	if code, out, err := runToEnd(t, "", env, "job", "pairs", "--self", "--k=10", "--vector-field=embedding", "--progress=off", "--out="+single, embeddings); err != nil || code != 0 {
		t.Fatalf("one process: exit %d, %v\n%s", code, err, out)
	}
	want, err := os.ReadFile(single)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(got, []byte("\n")); lines != 90 || !bytes.Equal(got, want) || !bytes.Contains(got, []byte(`{"id":"t0","neighbors":[{"id":"t`)) {
		t.Errorf("merged neighbours (%d lines, %d bytes) differ from one process's (%d bytes)", lines, len(got), len(want))
	}
}
