package index

import "testing"

func TestTombstonesBySeq(t *testing.T) {
	del := []uint64{0, 3, 5, 0}
	for _, tc := range []struct {
		row  int
		seq  uint64
		want bool
	}{{0, 9, false}, {1, 2, false}, {1, 3, true}, {2, 4, false}, {2, 5, true}, {3, 9, false}} {
		if got := deletedAt(del, tc.row, tc.seq); got != tc.want {
			t.Errorf("deletedAt(row %d, seq %d) = %v", tc.row, tc.seq, got)
		}
	}
	words, n := tombstoneBitmap(del, 4, 4)
	if n != 1 || words[0] != 0b10 {
		t.Fatalf("bitmap at seq 4: %b (%d)", words[0], n)
	}
	back, m := tombstonesFromBitmap(words, 4, 4, 100)
	if m != 1 || back[1] != 4 || back[2] != 0 || cap(back) != 100 {
		t.Fatalf("from bitmap: %v (%d) cap %d", back, m, cap(back))
	}
}
