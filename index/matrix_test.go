package index

import (
	"errors"
	"testing"
)

func TestMatrixRowsAndNorms(t *testing.T) {
	dir := t.TempDir()
	m, err := createMatrix(dir, 3, 4, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	const rows = 5000 // past the first capacity: the files grow
	if err := m.ensure(rows); err != nil {
		t.Fatal(err)
	}
	for r := range rows {
		m.writeRow(r, floatBytes(testVec(4, float32(r))))
	}
	data, norms := m.view(rows)
	if len(data) != rows*4 || len(norms) != rows {
		t.Fatalf("view: %d floats, %d norms", len(data), len(norms))
	}
	for r := range rows {
		if !checkVec(data[r*4:(r+1)*4]) || data[r*4] != float32(r) || norms[r] != sq(testVec(4, float32(r))) {
			t.Fatalf("row %d: %v norm %v", r, data[r*4:(r+1)*4], norms[r])
		}
	}
	if err := m.sync(); err != nil {
		t.Fatal(err)
	}
	m.close()
	if err := m.close(); err != nil {
		t.Fatal("second close:", err)
	}

	m, err = openMatrix(dir, 3, 4, true, rows, false)
	if err != nil {
		t.Fatal(err)
	}
	data, _ = m.view(rows)
	if data[4*4321] != 4321 {
		t.Fatal("rows lost across reopen")
	}
	m.close()
	if _, err := openMatrix(dir, 3, 5, true, rows, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong dim: %v", err)
	}
	if _, err := openMatrix(dir, 3, 4, true, 1<<30, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("more rows than the file holds: %v", err)
	}
	if _, err := openMatrix(dir, 4, 4, true, 1, false); err == nil {
		t.Fatal("opened a generation that does not exist")
	}
	var nilMatrix *matrix
	if err := nilMatrix.close(); err != nil {
		t.Fatal(err)
	}
}

func TestMatrixWithoutNorms(t *testing.T) {
	m, err := createMatrix(t.TempDir(), 1, 2, false, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	m.writeRow(0, floatBytes([]float32{1, 2}))
	data, norms := m.view(1)
	if norms != nil || data[1] != 2 {
		t.Fatalf("data %v norms %v", data, norms)
	}
	if d, _ := m.view(0); d == nil || len(d) != 0 {
		t.Fatal("empty view should be empty, not nil")
	}
}
