package index

import (
	"os"
	"testing"
)

func TestGenerationReferences(t *testing.T) {
	dir := t.TempDir()
	man, _ := newManifest(Spec{Dim: 2, Metric: Dot})
	g, err := createGeneration(dir, 5, man, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !g.acquire() {
		t.Fatal("acquire on a live generation failed")
	}
	if err := g.release(); err != nil { // the snapshot's
		t.Fatal(err)
	}
	if g.mat.vecs.mem == nil {
		t.Fatal("files closed while a reference remains")
	}
	if err := g.release(); err != nil { // the owner's: closes
		t.Fatal(err)
	}
	if g.mat.vecs.mem != nil || g.acquire() {
		t.Fatal("a released generation is still mapped or can be acquired")
	}
	for _, p := range g.files() {
		if _, err := os.Stat(p); err != nil && p != normsPath(dir, 5) {
			t.Errorf("%s: %v", p, err)
		}
	}
	g.removeFiles()
	for _, p := range g.files() {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived removeFiles", p)
		}
	}
}

func TestApplyReplacesAndDeletes(t *testing.T) {
	man, _ := newManifest(Spec{Dim: 2, Metric: Dot})
	g, err := createGeneration(t.TempDir(), 1, man, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.release()
	apply := func(seq uint64, build func(b *batch)) int {
		b := newBatch(0)
		build(b)
		b.seal(seq)
		_, ops, err := decodeBatch(b.payload(), 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.reserve(ops); err != nil {
			t.Fatal(err)
		}
		return g.applyLocked(seq, ops)
	}
	w := where{"record", 0, ""}
	apply(1, func(b *batch) {
		b.upsert(&Record{ID: "a", Vector: []float32{1, 1}}, 2, Dot, w)
		b.upsert(&Record{ID: "a", Vector: []float32{2, 2}}, 2, Dot, w) // later wins in the batch
		b.upsert(&Record{ID: "b", Vector: []float32{3, 3}}, 2, Dot, w)
	})
	if g.rows != 3 || g.live != 2 || g.del[0] != 1 {
		t.Fatalf("rows %d live %d del %v", g.rows, g.live, g.del)
	}
	if n := apply(2, func(b *batch) { b.delete("a", w); b.delete("a", w); b.delete("zz", w) }); n != 1 {
		t.Fatalf("deleted %d, want 1", n)
	}
	st := g.stateLocked(2)
	if st.live != 1 || !deletedAt(st.del, 1, 2) || deletedAt(st.del, 1, 1) {
		t.Fatalf("state %+v", st)
	}
}
