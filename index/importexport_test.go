package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestJSONLRoundTrip(t *testing.T) {
	c := testCollection(t, 3, Dot)
	var in strings.Builder
	const n = 2500 // crosses the 1024-record batches
	for i := range n {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&in, `{"id": "doc-%d", "vector": [%d, 0.1, -2.5e-3], "metadata": {"i": %d, "s": "x\"y"}}`+"\n", i, i, i)
		case 1:
			fmt.Fprintf(&in, `{"id":"doc-%d","vector":[%d,1,2],"metadata_bytes":"AAEC"}`+"\n\n", i, i)
		default:
			fmt.Fprintf(&in, `{"vector":[%d,1,2],"id":"doc-%d","metadata":null}`+"\r\n", i, i)
		}
	}
	got, err := c.ImportJSONL(context.Background(), strings.NewReader(in.String()))
	if err != nil || got != n {
		t.Fatalf("ImportJSONL = %d, %v", got, err)
	}
	if st := c.Stats(); st.Live != n || st.WALRecords != 3 {
		t.Fatalf("Stats %+v: want %d rows in 3 batches", st, n)
	}
	r, _, _ := c.Get("doc-3")
	if !slices.Equal(r.Vector, []float32{3, 0.1, -2.5e-3}) || string(r.Metadata) != `{"i":3,"s":"x\"y"}` || !r.MetadataJSON {
		t.Fatalf("doc-3 = %+v", r)
	}
	r, _, _ = c.Get("doc-4")
	if string(r.Metadata) != "\x00\x01\x02" || r.MetadataJSON {
		t.Fatalf("doc-4 = %+v", r)
	}
	var out bytes.Buffer
	exported, err := c.ExportJSONL(context.Background(), &out)
	if err != nil || exported != n {
		t.Fatalf("ExportJSONL = %d, %v", exported, err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines exported", len(lines))
	}
	for _, l := range lines[:5] {
		if !json.Valid([]byte(l)) {
			t.Fatalf("exported line is not JSON: %s", l)
		}
	}
	// Export → import → export is the identity.
	c2 := testCollection(t, 3, Dot)
	if _, err := c2.ImportJSONL(context.Background(), bytes.NewReader(out.Bytes())); err != nil {
		t.Fatal(err)
	}
	var out2 bytes.Buffer
	c2.ExportJSONL(context.Background(), &out2)
	if out.String() != out2.String() {
		t.Fatal("export of the re-import differs")
	}
}

func TestJSONLErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		name, input, want string
		stored            int
	}{
		{"bad json", `{"id":"a","vector":[1,2,3]}` + "\n" + `{"id":"b","vector":[1,2` + "\n", "line 2: ", 0},
		{"wrong dimension", `{"id":"a","vector":[1,2,3]}` + "\n\n" + `{"id":"b","vector":[1,2]}`, "line 3 (id \"b\"): vector has 2 dimensions, want 3", 0},
		{"unknown field", `{"id":"a","vector":[1,2,3],"vec":[1]}`, `line 1: json: unknown field "vec"`, 0},
		{"empty id", `{"vector":[1,2,3]}`, "line 1: id is empty", 0},
		{"metadata not an object", `{"id":"a","vector":[1,2,3],"metadata":[1]}`, "line 1 (id \"a\"): metadata is not a valid JSON object", 0},
		{"both metadata", `{"id":"a","vector":[1,2,3],"metadata":{},"metadata_bytes":"AA=="}`, "line 1: both metadata and metadata_bytes", 0},
		{"trailing data", `{"id":"a","vector":[1,2,3]} {}`, "line 1: data after the JSON object", 0},
		{"float32 overflow", `{"id":"a","vector":[1e39,2,3]}`, "line 1: ", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testCollection(t, 3, Dot)
			n, err := c.ImportJSONL(context.Background(), strings.NewReader(tc.input))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ImportJSONL = %v, want ErrInvalid containing %q", err, tc.want)
			}
			if n != tc.stored || c.Stats().Live != tc.stored {
				t.Fatalf("stored %d (live %d), want %d", n, c.Stats().Live, tc.stored)
			}
		})
	}
}

func TestJSONLErrorAfterFullBatchesKeepsThem(t *testing.T) {
	c := testCollection(t, 1, Dot)
	var in strings.Builder
	for i := range 1500 {
		fmt.Fprintf(&in, `{"id":"%d","vector":[1]}`+"\n", i)
	}
	in.WriteString(`{"id":"bad","vector":[]}` + "\n")
	n, err := c.ImportJSONL(context.Background(), strings.NewReader(in.String()))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "line 1501") {
		t.Fatalf("err = %v", err)
	}
	if n != 1024 || c.Stats().Live != 1024 {
		t.Fatalf("stored %d (live %d), want the first full batch of 1024", n, c.Stats().Live)
	}
}

func TestJSONLLineTooLong(t *testing.T) {
	c := testCollection(t, 1, Dot)
	r := io.MultiReader(strings.NewReader(`{"id":"a","vector":[1]}`+"\n"+`{"id":"`), &repeatReader{b: 'x', n: maxJSONLLine + 10})
	_, err := c.ImportJSONL(context.Background(), r)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "line 2: longer than") {
		t.Fatalf("err = %v", err)
	}
}

type repeatReader struct {
	b byte
	n int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = r.b
	}
	r.n -= k
	return k, nil
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"plain", `q"b\`, "ctl\x00\x1f\n\t\r", "é😀", "line\u2028sep"} {
		enc := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(enc, &back); err != nil || back != s {
			t.Errorf("%q → %s → %q, %v", s, enc, back, err)
		}
	}
}

func TestImportOnReadOnly(t *testing.T) {
	c := testCollection(t, 1, Dot)
	ro, err := OpenReadOnly(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.ImportJSONL(context.Background(), strings.NewReader("")); !errors.Is(err, ErrReadOnly) {
		t.Fatal(err)
	}
	if _, err := ro.ImportNPY(context.Background(), strings.NewReader(""), nil); !errors.Is(err, ErrReadOnly) {
		t.Fatal(err)
	}
}

// TestCheckStoresNothing: CheckJSONL and CheckNPY find the first bad record
// as the imports would, count the good ones, and store nothing.
func TestCheckStoresNothing(t *testing.T) {
	c := testCollection(t, 2, Cosine)
	ctx := context.Background()
	good := "{\"id\": \"a\", \"vector\": [1, 0]}\n{\"id\": \"b\", \"vector\": [0, 1]}\n"
	if n, err := c.CheckJSONL(ctx, strings.NewReader(good)); err != nil || n != 2 {
		t.Fatalf("CheckJSONL(good) = %d, %v", n, err)
	}
	bad := good + "{\"id\": \"c\", \"vector\": [1, 2, 3]}\n"
	if _, err := c.CheckJSONL(ctx, strings.NewReader(bad)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("CheckJSONL(bad) = %v, want ErrInvalid naming line 3", err)
	}
	npy := npyBytes(2, 2, func(i, j int) float32 { return float32(1 - i) }) // row 1 is zero
	if _, err := c.CheckNPY(ctx, bytes.NewReader(npy), nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("CheckNPY with a zero row under cosine = %v, want ErrInvalid", err)
	}
	if st := c.Stats(); st.Rows != 0 || st.Seq != 0 {
		t.Fatalf("checks stored something: %+v", st)
	}
}
