package index_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/embedd/embedd/index"
)

func Example() {
	dataDir, err := os.MkdirTemp("", "embedd-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)

	m, err := index.OpenManager(dataDir)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	docs, err := m.Create("docs", index.Spec{Dim: 3, Metric: index.Cosine})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	err = docs.Upsert(ctx, []index.Record{
		{ID: "cat", Vector: []float32{1, 0, 0}, Metadata: []byte(`{"kind":"animal"}`), MetadataJSON: true},
		{ID: "kitten", Vector: []float32{0.9, 0.1, 0}, Metadata: []byte(`{"kind":"animal"}`), MetadataJSON: true},
		{ID: "car", Vector: []float32{0, 0, 1}, Metadata: []byte(`{"kind":"vehicle"}`), MetadataJSON: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := docs.Search(ctx, [][]float32{{1, 0.05, 0}}, 2, index.SearchOptions{Filter: map[string]string{"kind": "animal"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res[0] {
		fmt.Printf("%s %.3f %s\n", r.ID, r.Score, r.Metadata)
	}
	// Output:
	// cat 0.999 {"kind":"animal"}
	// kitten 0.998 {"kind":"animal"}
}
