package vec

// checkRows panics unless every row of rows is a whole row of a table of n
// elements with rows of d > 0 elements (rows of none read nothing).
func checkRows(rows []int32, n, d int) {
	if d == 0 {
		return
	}
	nrows := n / d
	for _, r := range rows {
		if uint(r) >= uint(nrows) {
			panic("vec: row index out of range")
		}
	}
}

// addRowsGo is AddRows's portable loop.
func addRowsGo(dst, table []float32, rows []int32) {
	d := len(dst)
	for _, r := range rows {
		o := int(r) * d
		addGo(dst, table[o:o+d])
	}
}

// addHalfRowsGo is AddHalfRows's portable loop.
func addHalfRowsGo(dst []float32, table []uint16, rows []int32) {
	d := len(dst)
	for _, r := range rows {
		o := int(r) * d
		addHalfGo(dst, table[o:o+d])
	}
}
