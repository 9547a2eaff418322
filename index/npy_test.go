package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// npyBytes builds a .npy file of rows×cols float32 with value f(i, j).
func npyBytes(rows, cols int, f func(i, j int) float32) []byte {
	b := AppendNPYHeader(nil, rows, cols)
	for i := range rows {
		for j := range cols {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f(i, j)))
		}
	}
	return b
}

func TestNPYHeader(t *testing.T) {
	h := AppendNPYHeader(nil, 1000, 384)
	if len(h)%64 != 0 {
		t.Fatalf("header is %d bytes, not a multiple of 64", len(h))
	}
	got, err := ReadNPYHeader(bytes.NewReader(h))
	if err != nil || got.Descr != "<f4" || got.Fortran || !slices.Equal(got.Shape, []int{1000, 384}) {
		t.Fatalf("ReadNPYHeader = %+v, %v", got, err)
	}
	for _, dict := range []string{
		"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
		"{'shape': (3,4,), 'fortran_order': False, 'descr': '<f4'}",
		`{"descr": "<f4", "fortran_order": False, "shape": (3, 4)}` + "   \n",
	} {
		h, err := parseNPYDict(dict)
		if err != nil || !slices.Equal(h.Shape, []int{3, 4}) || h.Descr != "<f4" {
			t.Errorf("%s: %+v, %v", dict, h, err)
		}
	}
	for _, dict := range []string{
		"{'descr': '<f4', 'shape': (3, 4)}",                            // no fortran_order
		"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3, 4)}",    // not a bool
		"{'descr': '<f4', 'fortran_order': False, 'shape': (3, x)}",    // not an int
		"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)} xx", // trailing
		"['descr']",
	} {
		if _, err := parseNPYDict(dict); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", dict, err)
		}
	}
	// Version 2.0: a 4-byte header length.
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n"
	v2 := append([]byte(npyMagic+"\x02\x00"), binary.LittleEndian.AppendUint32(nil, uint32(len(dict)))...)
	if h, err := ReadNPYHeader(bytes.NewReader(append(v2, dict...))); err != nil || !slices.Equal(h.Shape, []int{2, 2}) {
		t.Errorf("version 2: %+v, %v", h, err)
	}
	if _, err := ReadNPYHeader(strings.NewReader("PK\x03\x04 not npy")); !errors.Is(err, ErrInvalid) {
		t.Errorf("not npy: %v", err)
	}
}

func TestImportNPY(t *testing.T) {
	c := testCollection(t, 4, Dot)
	const rows = 2100
	data := npyBytes(rows, 4, func(i, j int) float32 { return float32(i) + float32(j)/4 })
	n, err := c.ImportNPY(context.Background(), bytes.NewReader(data), nil)
	if err != nil || n != rows {
		t.Fatalf("ImportNPY = %d, %v", n, err)
	}
	for _, i := range []int{0, 1, 1023, 1024, rows - 1} {
		r, ok, _ := c.Get(ids(rows, "")[i])
		if !ok || !slices.Equal(r.Vector, testVec(4, float32(i))) {
			t.Fatalf("row %d: %v %v", i, ok, r.Vector)
		}
	}
	// With an ids file, and big-endian data.
	c2 := testCollection(t, 2, Dot)
	be := []byte(strings.Replace(string(AppendNPYHeader(nil, 2, 2)), "<f4", ">f4", 1))
	for _, x := range []float32{1, 2, 3, 4} {
		be = binary.BigEndian.AppendUint32(be, math.Float32bits(x))
	}
	if n, err := c2.ImportNPY(context.Background(), bytes.NewReader(be), strings.NewReader("alpha\r\nbeta\n")); err != nil || n != 2 {
		t.Fatalf("ImportNPY with ids = %d, %v", n, err)
	}
	if r, ok, _ := c2.Get("beta"); !ok || !slices.Equal(r.Vector, []float32{3, 4}) {
		t.Fatalf("beta = %v", r.Vector)
	}
}

func TestImportNPYErrors(t *testing.T) {
	good := npyBytes(3, 2, func(i, j int) float32 { return 1 })
	swapDescr := func(from, to string) []byte { return []byte(strings.Replace(string(good), from, to, 1)) }
	cases := []struct {
		name string
		data []byte
		ids  string
		want string
	}{
		{"float64", swapDescr("<f4", "<f8"), "", `dtype "<f8" is not float32`},
		{"fortran", swapDescr("False", "True "), "", "Fortran order"},
		{"1-D", swapDescr("(3, 2)", "(6,)  "), "", "shape [6] is not 2-D"},
		{"wrong dim", npyBytes(3, 5, func(i, j int) float32 { return 1 }), "", "rows have 5 dimensions, the collection 2"},
		{"truncated", good[:len(good)-3], "", "npy row 2: the data ends early"},
		{"extra data", append(append([]byte(nil), good...), 0), "", "data after the 3 rows"},
		{"nan", npyBytes(3, 2, func(i, j int) float32 { return float32(math.NaN()) }), "", `npy row 0 (id "0"): vector component 0 is NaN`},
		{"too few ids", good, "a\nb\n", "npy ids: 2 lines for 3 rows"},
		{"too many ids", good, "a\nb\nc\nd\n", "more lines than the 3 rows"},
		{"bad id", good, "a\n\nc\n", "npy ids line 2: id is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testCollection(t, 2, Dot)
			var ids *strings.Reader
			if tc.ids != "" {
				ids = strings.NewReader(tc.ids)
			}
			var err error
			if ids != nil {
				_, err = c.ImportNPY(context.Background(), bytes.NewReader(tc.data), ids)
			} else {
				_, err = c.ImportNPY(context.Background(), bytes.NewReader(tc.data), nil)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ImportNPY = %v, want ErrInvalid containing %q", err, tc.want)
			}
			if c.Stats().Live != 0 {
				t.Fatalf("%d rows stored by a failed import of one batch", c.Stats().Live)
			}
		})
	}
}

// jobs rewrites a placeholder header in place, so the size must not depend
// on the shape.
func TestNPYHeaderFixedSize(t *testing.T) {
	for _, s := range [][2]int{{0, 0}, {1000, 384}, {math.MaxInt64, math.MaxInt64}, {math.MinInt64, math.MinInt64}} {
		if n := len(AppendNPYHeader(nil, s[0], s[1])); n != 128 {
			t.Errorf("AppendNPYHeader(%d, %d) is %d bytes, not 128", s[0], s[1], n)
		}
	}
}
