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

// TestBatchJob holds the batch manifests to `embedd job`: the Indexed Job
// has as many completions as --shards, retries per index and never
// restarts a pod in place; it and the merge share the work volume; then
// every index runs as a local process of the real binary (with
// JOB_COMPLETION_INDEX set and substituted as the Job controller and the
// kubelet do), the merge's init container finds the shards done, and the
// merged output is byte for byte what one process writes for the input.
func TestBatchJob(t *testing.T) {
	b := build(t, "jobs")
	embed, merge := named[batchv1.Job](t, b, "embedd-embed"), named[batchv1.Job](t, b, "embedd-embed-merge")
	w := workload{name: "embed Job", b: b, pod: embed.Spec.Template, dockerfile: "../Dockerfile"}
	c := w.container(t)
	spec := embed.Spec
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Fatalf("completionMode %v, want Indexed", spec.CompletionMode)
	}
	n, err := strconv.Atoi(flagValue(t, c.Args, "shards"))
	if err != nil || spec.Completions == nil || int(*spec.Completions) != n || spec.Parallelism == nil || int(*spec.Parallelism) != n {
		t.Fatalf("--shards %d, completions %v, parallelism %v: want them equal", n, spec.Completions, spec.Parallelism)
	}
	if spec.BackoffLimitPerIndex == nil || *spec.BackoffLimitPerIndex < 1 || spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("backoffLimitPerIndex %v, restartPolicy %s: want retries per index and Never", spec.BackoffLimitPerIndex, spec.Template.Spec.RestartPolicy)
	}
	if !strings.Contains(flagValue(t, c.Args, "job-dir"), "$(JOB_COMPLETION_INDEX)") {
		t.Errorf("--job-dir does not depend on JOB_COMPLETION_INDEX: the shards would share one")
	}
	mergeC, waitC := merge.Spec.Template.Spec.Containers[0], merge.Spec.Template.Spec.InitContainers[0]
	if a, m := volumeClaim(t, embed.Spec.Template.Spec, c, "/work"), volumeClaim(t, merge.Spec.Template.Spec, mergeC, "/work"); a != m {
		t.Errorf("the shards write claim %s, the merge reads %s", a, m)
	}

	lp, args, env := layOut(t, w)
	input := args[len(args)-1] // mapped by layOut
	var in strings.Builder
	for i := range 60 {
		fmt.Fprintf(&in, `{"id": "t%d", "text": "line %d of a batch job, %s"}`+"\n", i, i, strings.Repeat("word ", i%7))
	}
	if err := os.MkdirAll(filepath.Dir(input), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(input, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
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
			t.Fatalf("index %d: exit %d, %v\n%s", i, codes[i], errs[i], outs[i])
		}
	}

	mp := newLocalPod(lp.root, mergeC)
	if len(waitC.Command) != 3 || waitC.Command[0] != "sh" || waitC.Command[1] != "-c" {
		t.Fatalf("init container %s: command %q, want sh -c SCRIPT", waitC.Name, waitC.Command)
	}
	if code, out, err := runToEnd(t, "/bin/sh", nil, "-c", mp.words(waitC.Command[2])); err != nil || code != 0 {
		t.Fatalf("the merge's wait: exit %d, %v\n%s", code, err, out)
	}
	var mergeArgs []string
	for _, a := range mergeC.Args {
		mergeArgs = append(mergeArgs, mp.value(a))
	}
	if code, out, err := runToEnd(t, "", env, mergeArgs...); err != nil || code != 0 {
		t.Fatalf("merge: exit %d, %v\n%s", code, err, out)
	}
	merged, err := os.ReadFile(mp.value(flagValue(t, mergeC.Args, "out")))
	if err != nil {
		t.Fatal(err)
	}

	single := filepath.Join(t.TempDir(), "single.jsonl")
	config := lp.value(w.configArg(t))
	if code, out, err := runToEnd(t, "", env, "job", "embed", "--config="+config, "--out="+single, "--progress=off", input); err != nil || code != 0 {
		t.Fatalf("one process: exit %d, %v\n%s", code, err, out)
	}
	want, err := os.ReadFile(single)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(merged, []byte("\n")); lines != 60 || !bytes.Equal(merged, want) {
		t.Errorf("merged output (%d lines, %d bytes) differs from one process's (%d bytes)", lines, len(merged), len(want))
	}
}
