package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tensor is one entry of a hand-made file.
type tensor struct {
	name, dtype string
	shape       []int
	data        []byte
}

// build lays out a safetensors file by hand: header length, JSON header
// (offsets in order), data.
func build(t *testing.T, meta map[string]string, ts ...tensor) []byte {
	t.Helper()
	header := map[string]any{}
	if meta != nil {
		header["__metadata__"] = meta
	}
	var body []byte
	for _, x := range ts {
		header[x.name] = map[string]any{"dtype": x.dtype, "shape": x.shape, "data_offsets": []int{len(body), len(body) + len(x.data)}}
		body = append(body, x.data...)
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), body...)
}

func f32s(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func u16s(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return b
}

func TestMatrixDTypes(t *testing.T) {
	want := []float32{1, -2, 0.5, 65504, 0, -0.25}
	data := build(t, map[string]string{"format": "pt"},
		tensor{"f32", "F32", []int{2, 3}, f32s(want...)},
		// the same values as IEEE half and bfloat16 bit patterns
		tensor{"f16", "F16", []int{2, 3}, u16s(0x3c00, 0xc000, 0x3800, 0x7bff, 0x0000, 0xb400)},
		tensor{"bf16", "BF16", []int{3, 2}, u16s(0x3f80, 0xc000, 0x3f00, 0x477f, 0x0000, 0xbe80)},
	)
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v, want format=pt", f.Metadata)
	}
	if got := strings.Join(f.Names(), ","); got != "bf16,f16,f32" {
		t.Errorf("names %s", got)
	}
	if h, r, c, err := f.HalfMatrix("f16"); err != nil || r != 2 || c != 3 || h[3] != 0x7bff {
		t.Errorf("HalfMatrix(f16) = %v %d×%d, %v", h, r, c, err)
	}
	if _, _, _, err := f.HalfMatrix("bf16"); !errors.Is(err, ErrDType) || !strings.Contains(err.Error(), "want F16") {
		t.Errorf("HalfMatrix(bf16): %v, want ErrDType", err)
	}
	for _, c := range []struct {
		name       string
		rows, cols int
		want       []float32
	}{
		{"f32", 2, 3, want},
		{"f16", 2, 3, want},
		{"bf16", 3, 2, []float32{1, -2, 0.5, 65280, 0, -0.25}}, // 65504 is not a bfloat16
	} {
		got, r, cl, err := f.Matrix(c.name)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r != c.rows || cl != c.cols {
			t.Errorf("%s: %d×%d, want %d×%d", c.name, r, cl, c.rows, c.cols)
		}
		for i := range c.want {
			if got[i] != c.want[i] {
				t.Errorf("%s[%d] = %v, want %v", c.name, i, got[i], c.want[i])
			}
		}
	}
}

func TestVectorAndInts(t *testing.T) {
	f, err := Parse(build(t, nil,
		tensor{"w", "F32", []int{3}, f32s(1, 2, 3)},
		tensor{"map", "I64", []int{2}, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 7), math.MaxUint64)},
		tensor{"small", "I32", []int{1}, binary.LittleEndian.AppendUint32(nil, 5)},
	))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.Vector("w", 3); err != nil || v[2] != 3 {
		t.Errorf("Vector = %v, %v", v, err)
	}
	if m, err := f.Int64s("map", 2); err != nil || m[0] != 7 || m[1] != -1 {
		t.Errorf("Int64s = %v, %v", m, err)
	}
	if m, err := f.Int64s("small", -1); err != nil || m[0] != 5 {
		t.Errorf("Int64s(I32) = %v, %v", m, err)
	}
	if _, err := f.Vector("w", 4); !errors.Is(err, ErrShape) {
		t.Errorf("Vector of the wrong length: %v, want ErrShape", err)
	}
	if _, _, _, err := f.Matrix("w"); !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), "[3]") {
		t.Errorf("Matrix of a vector: %v, want ErrShape naming the shape", err)
	}
	if _, _, _, err := f.Matrix("nope"); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "map, small, w") {
		t.Errorf("missing tensor: %v, want ErrMissing listing the names", err)
	}
	if _, _, _, err := f.HalfMatrix("w"); !errors.Is(err, ErrShape) {
		t.Errorf("HalfMatrix of a vector: %v, want ErrShape", err)
	}
	if _, err := f.Vector("map", 2); !errors.Is(err, ErrDType) || !strings.Contains(err.Error(), "I64") {
		t.Errorf("Vector of I64: %v, want ErrDType naming I64", err)
	}
	if _, err := f.Int64s("w", 3); !errors.Is(err, ErrDType) {
		t.Errorf("Int64s of F32: %v, want ErrDType", err)
	}
}

func TestParseErrors(t *testing.T) {
	good := build(t, nil, tensor{"a", "F32", []int{2}, f32s(1, 2)}, tensor{"b", "F16", []int{1}, u16s(0x3c00)})
	withHeader := func(h string, body []byte) []byte {
		return append(append(binary.LittleEndian.AppendUint64(nil, uint64(len(h))), h...), body...)
	}
	for _, c := range []struct {
		name string
		data []byte
		want error
		text string
	}{
		{"empty", nil, ErrTruncated, "fewer than the 8"},
		{"cut in the header", good[:20], ErrTruncated, "only 12 follow"},
		{"cut in the data", good[:len(good)-1], ErrTruncated, "10 bytes of tensor data but the file holds 9"},
		{"huge header length", binary.LittleEndian.AppendUint64(nil, 1<<40), ErrFormat, "header length"},
		{"not JSON", withHeader("{nope", nil), ErrFormat, "not a JSON object"},
		{"unknown dtype", withHeader(`{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}`, f32s(1)), ErrDType, `"F33"`},
		{"shape and bytes disagree", withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, f32s(1)), ErrFormat, "needs 8 bytes"},
		{"gap", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32s(1, 2)), ErrFormat, "no gap or overlap"},
		{"trailing bytes", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32s(1, 2)), ErrFormat, "4 bytes follow"},
		{"bad offsets", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, f32s(1)), ErrFormat, "data_offsets"},
		{"negative shape", withHeader(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, f32s(1)), ErrFormat, "negative"},
		{"bad metadata", withHeader(`{"__metadata__":{"a":1}}`, nil), ErrFormat, "__metadata__"},
	} {
		_, err := Parse(c.data)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) || !strings.HasPrefix(err.Error(), "embedd/models: ") {
			t.Errorf("%s: %v, want %v mentioning %q", c.name, err, c.want, c.text)
		}
	}
}

func TestReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	data := build(t, nil, tensor{"embeddings", "F32", []int{1, 2}, f32s(3, 4)})
	if err := os.WriteFile(path, data[:len(data)-2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), path) {
		t.Errorf("truncated file: %v, want ErrTruncated naming %s", err, path)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if m, _, _, err := f.Matrix("embeddings"); err != nil || m[1] != 4 {
		t.Errorf("Matrix = %v, %v", m, err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v, want ErrNotExist", err)
	}
}
