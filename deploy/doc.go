// Package deploy holds what runs embedd past one machine, as plain files:
// Kubernetes manifests (k8s/: a kustomize base with cpu and gpu overlays
// for serving, the shards' StatefulSet in k8s/sharded, an Indexed Job of
// `embedd job embed` and its merge in k8s/jobs, followed in k8s/pairs by an
// Indexed Job of `embedd job pairs --self` and its merge, the prometheus-adapter rule
// of the autoscaler) and a Grafana dashboard
// (grafana/embedd.json); the repository README's "Running on Kubernetes" says how to use them.
//
// The package has no code of its own. Its tests hold the files to the
// code: every manifest decodes strictly into the Kubernetes API types and
// every kustomization builds; each pod template runs, as a local process of
// the real embedd binary, with its arguments, environment, config file and
// volumes, and answers its probes (the batch jobs' indexes and merges run,
// the pairs after the embedding, to merged outputs equal to one process's); the autoscaler's metric and every
// dashboard query name series a real server exports. Other tests stand in
// locally for what a cluster does: servers on 127.0.0.2–5 behind a dns:///
// resolver, and a collection sharded over three servers searched exactly.
package deploy
