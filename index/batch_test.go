package index

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"testing"
)

func TestBatchEncodeDecode(t *testing.T) {
	b := newBatch(0)
	if err := b.upsert(&Record{ID: "a", Vector: []float32{3, 4}, Metadata: []byte(`{ "k" : 1 }`), MetadataJSON: true}, 2, Cosine, where{"record", 0, ""}); err != nil {
		t.Fatal(err)
	}
	if err := b.delete("gone", where{"id", 0, ""}); err != nil {
		t.Fatal(err)
	}
	if err := b.upsert(&Record{ID: "b", Vector: []float32{1, 0}, Metadata: []byte("raw")}, 2, Cosine, where{"record", 1, ""}); err != nil {
		t.Fatal(err)
	}
	rec := b.seal(42)
	n := binary.LittleEndian.Uint32(rec)
	if int(n) != len(rec)-walRecordHeaderSize || binary.LittleEndian.Uint32(rec[4:]) != crc32.Checksum(rec[8:], castagnoli) {
		t.Fatal("bad framing")
	}
	seq, ops, err := decodeBatch(b.payload(), 2, nil)
	if err != nil || seq != 42 || len(ops) != 3 {
		t.Fatalf("decode: %d, %d ops, %v", seq, len(ops), err)
	}
	if ops[0].kind != walOpUpsert || string(ops[0].id) != "a" || ops[0].metaKind != metaKindJSON || string(ops[0].meta) != `{"k":1}` {
		t.Fatalf("op 0: %+v", ops[0])
	}
	v := []float32{float32FromLE(ops[0].vec), float32FromLE(ops[0].vec[4:])}
	if !slices.Equal(v, []float32{0.6, 0.8}) {
		t.Fatalf("stored vector %v, want normalised [0.6 0.8]", v)
	}
	if ops[1].kind != walOpDelete || string(ops[1].id) != "gone" || ops[2].metaKind != metaKindBytes {
		t.Fatalf("ops 1, 2: %+v %+v", ops[1], ops[2])
	}
	// Any truncation is detected.
	p := b.payload()
	for cut := walBatchHeaderSize; cut < len(p); cut++ {
		if _, _, err := decodeBatch(p[:cut], 2, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("payload cut at %d decoded: %v", cut, err)
		}
	}
	if _, _, err := decodeBatch(append(slices.Clone(p), 0), 2, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatal("trailing byte accepted")
	}
}

func TestBatchTooLarge(t *testing.T) {
	b := newBatch(0)
	big := make([]float32, MaxDim)
	for i := range big {
		big[i] = 1
	}
	var err error
	for i := 0; err == nil && i < 1000; i++ {
		err = b.upsert(&Record{ID: ids(1000, "x")[i], Vector: big}, MaxDim, Dot, where{"record", i, ""})
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("a batch over 64 MiB: %v", err)
	}
}
