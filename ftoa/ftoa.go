// Package ftoa writes float32 values as JSON numbers: the shortest decimal
// that reads back as the same float32, byte for byte what encoding/json
// writes for a float32 ("0.012345679", "-0.5", "1e-7", "1.5e+21").
//
// Every embedding leaves the server and the batch jobs as text hundreds of
// numbers long, so this formatting is most of the CPU of a JSON response
// or a JSONL output once the model is cheap: a static model embeds a
// 128-token text in about 11 µs of CPU, and its 384 numbers took about
// 20 µs through strconv.AppendFloat and 28 µs through encoding/json on
// this project's machines (10 µs here). strconv and encoding/json are general (any
// precision and format, float64 too, reflection); this is the Schubfach
// algorithm (Raffaello Giulietti, "The Schubfach way to render doubles",
// 2020) for float32 alone, with no loop over digits, and the digits made
// eight at a time in one register, for the one format JSON needs
// (BenchmarkAppendArray compares the three). Its output is checked
// against strconv's for every one of the 2^32 float32 bit patterns
// (TestAllFloat32 with EMBEDD_FTOA_ALL=1; a sample and every exponent and
// power-of-ten boundary otherwise).
package ftoa

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/bits"
	"slices"
)

const (
	kMin = -45 // the decimal exponents a float32 needs
	kMax = 31
)

// g[k-kMin] is floor(10^-k * 2^(62-flog2pow10(-k))) + 1, a 63-bit
// approximation of 10^-k from above.
var g = gTable()

func gTable() (g [kMax - kMin + 1]uint64) {
	ten := big.NewInt(10)
	for k := kMin; k <= kMax; k++ {
		num, den := big.NewInt(1), big.NewInt(1)
		if k <= 0 {
			num.Exp(ten, big.NewInt(int64(-k)), nil)
		} else {
			den.Exp(ten, big.NewInt(int64(k)), nil)
		}
		if s := 62 - int(flog2pow10(int32(-k))); s >= 0 {
			num.Lsh(num, uint(s))
		} else {
			den.Lsh(den, uint(-s))
		}
		g[k-kMin] = num.Quo(num, den).Uint64() + 1
	}
	return g
}

// flog10pow2 is floor(q log10(2)).
func flog10pow2(q int32) int32 { return int32((int64(q) * 661971961083) >> 41) }

// flog10threeQuartersPow2 is floor(log10(3/4 2^q)).
func flog10threeQuartersPow2(q int32) int32 {
	return int32((int64(q)*661971961083 - 274743187321) >> 41)
}

// flog2pow10 is floor(e log2(10)).
func flog2pow10(e int32) int32 { return int32((int64(e) * 913124641741) >> 38) }

// rop is g*cp / 2^95, rounded to odd (its last bit set when inexact).
func rop(g, cp uint64) uint64 {
	hi, _ := bits.Mul64(g, cp)
	return hi>>31 | ((hi&0xffffffff)+0xffffffff)>>32
}

// shortest returns the shortest decimal digits × 10^exp that reads back as
// the finite, nonzero float32 with exponent field e and mantissa field m,
// the one nearest the exact value where several are as short, as strconv
// picks it; digits may end in zeros.
func shortest(m, e uint32) (digits uint32, exp int32) {
	// The value is c × 2^q.
	q, c := int32(-149), m
	if e != 0 {
		q, c = int32(e)-150, 1<<23|m
		if -24 < q && q < 0 && c&(1<<-q-1) == 0 { // a small integer
			return c >> -q, 0
		}
	}
	// The decimals that read back as it lie between cbl and cbr (times
	// 2^(q-2)); a power of two's lower neighbour is nearer. k is chosen so
	// that the value over 10^k has about 9 digits.
	odd := uint64(c & 1)
	cb := uint64(c) << 2
	cbl, cbr := cb-2, cb+2
	var k int32
	if c != 1<<23 || q == -149 {
		k = flog10pow2(q)
	} else {
		cbl, k = cb-1, flog10threeQuartersPow2(q)
	}
	h := q + flog2pow10(-k) + 33
	gk := g[k-kMin]
	vb, vbl, vbr := rop(gk, cb<<h), rop(gk, cbl<<h), rop(gk, cbr<<h)
	s := vb >> 2
	if e == 0 {
		// A subnormal has fewer significant bits than the scale assumes:
		// its shortest decimal may be several digits shorter than s.
		var d uint64
		for p := uint64(10); p <= 10*s; p *= 10 {
			lo := s / p * p
			hi := lo + p
			loIn, hiIn := vbl+odd <= lo<<2, hi<<2+odd <= vbr
			if !loIn && !hiIn {
				break
			}
			d = hi
			if loIn && (!hiIn || vb-lo<<2 <= hi<<2-vb) {
				d = lo
			}
		}
		if d != 0 {
			return uint32(d), k
		}
	}
	// The candidates: the nearer of s and s+1 (on a tie the even one,
	// except at a power of two, where strconv's Dragonbox rounds up: only
	// 2^-12 has such a tie among float32s); but the one of them inside the
	// interval if only one is; but the one of the two multiples of ten
	// around s inside it if only one is (a digit fewer). Which one wins is
	// a coin toss for a branch predictor, so it is found with 0/1
	// arithmetic instead of branches.
	t := s + 1
	mid := (s + t) << 1
	nearS := b2u(vb < mid) | b2u(vb == mid)&(s&1^1)&b2u(c != 1<<23)
	sIn, tIn := b2u(vbl+odd <= s<<2), b2u(t<<2+odd <= vbr)
	one := sIn ^ tIn // exactly one of s and t inside
	d := t - (one&sIn | (one^1)&nearS)
	sp10 := 10 * (s * 1717986919 >> 34)
	tp10 := sp10 + 10
	spIn, tpIn := b2u(vbl+odd <= sp10<<2), b2u(tp10<<2+odd <= vbr)
	shorter := (spIn ^ tpIn) & b2u(s >= 100)
	d ^= (d ^ (tp10 - 10*spIn)) & -shorter
	return uint32(d), k
}

// b2u is 1 for true, 0 for false (the compiler makes it a SETcc, no branch).
func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// digits8 returns the 8 decimal digits of n < 10^8, with leading zeros, one
// a byte, the first in the lowest (SWAR: the two halves' hundreds, then
// tens, are found in every lane of one word at once).
func digits8(n uint32) uint64 {
	x := uint64(n/10000) | uint64(n%10000)<<32 // 4 digits a 32-bit lane
	hundreds := (x * 10486 >> 20) & 0x0000007f0000007f
	x = hundreds | (x-hundreds*100)<<16 // 2 digits a 16-bit lane
	tens := (x * 103 >> 10) & 0x000f000f000f000f
	return tens | (x-tens*10)<<8 // 1 digit a byte
}

// pow10 holds 10^0 to 10^9.
var pow10 = [...]uint32{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

// numDigits is the number of decimal digits of d > 0.
func numDigits(d uint32) int {
	n := (bits.Len32(d) * 1233) >> 12 // about log10(2) times the bit length
	if d >= pow10[n] {
		n++
	}
	return n
}

const (
	room   = 32                 // bytes put may write (a float32 takes at most 22)
	zeros8 = 0x3030303030303030 // "00000000"; added to eight digits 0-9, makes them ASCII
)

// put writes x as Append does at the start of out and returns its length;
// it may write beyond that, up to room bytes.
func put(out *[room]byte, x float32) int {
	u := math.Float32bits(x)
	if u<<1 == 0 {
		if u != 0 {
			out[0], out[1] = '-', '0'
			return 2
		}
		out[0] = '0'
		return 1
	}
	e, m := (u>>23)&0xff, u&(1<<23-1)
	if e == 0xff {
		copy(out[:], "null")
		return 4
	}
	out[0] = '-'
	i := int(u >> 31) // past the '-' if negative
	d, k := shortest(m, e)
	// The significant digits are first, then the nd-1 others in rest, one
	// a byte from the lowest, all in registers (a round trip through
	// memory stalls on store forwarding), and without branches on the
	// digits: d's trailing zeros are the zero bytes at the top of its
	// digits, found by counting bits.
	all := numDigits(d) // with the trailing zeros
	low := digits8(d % 100000000)
	nd := all - bits.LeadingZeros64(low)/8
	first, rest := byte('0'+d/100000000), low|zeros8
	if all < 9 {
		w := low >> (8 * (8 - all)) // without the leading zeros
		first, rest = byte(w)|'0', w>>8|zeros8
	}
	point := all + int(k) // digits before the decimal point
	out[i] = first
	if a := math.Float32frombits(u &^ (1 << 31)); a < 1e-6 || a >= 1e21 {
		i++
		if nd > 1 {
			out[i] = '.'
			binary.LittleEndian.PutUint64(out[i+1:], rest)
			i += nd
		}
		x := point - 1
		out[i], out[i+1] = 'e', '+'
		if x < 0 {
			out[i+1] = '-'
			x = -x
		}
		if x >= 10 {
			out[i+2], out[i+3] = byte('0'+x/10), byte('0'+x%10)
			return i + 4
		}
		out[i+2] = byte('0' + x)
		return i + 3
	}
	switch {
	case point <= 0: // 0.000ddd (point >= -5 here)
		out[i], out[i+1] = '0', '.'
		binary.LittleEndian.PutUint64(out[i+2:], zeros8)
		i += 2 - point
		out[i] = first
		binary.LittleEndian.PutUint64(out[i+1:], rest)
		return i + nd
	case point < nd: // ddd.ddd: the '.' after point-1 digits of rest
		binary.LittleEndian.PutUint64(out[i+1:], rest)
		out[i+point] = '.'
		binary.LittleEndian.PutUint64(out[i+point+1:], rest>>(8*(point-1)))
		return i + nd + 1
	default: // ddd000 (point <= 21 here)
		binary.LittleEndian.PutUint64(out[i+1:], rest)
		for z := i + nd; z < i+point; z += 8 {
			binary.LittleEndian.PutUint64(out[z:], zeros8)
		}
		return i + point
	}
}

// Append appends x to b as encoding/json writes a float32: the shortest
// decimal that reads back as x, in plain notation from 1e-6 up to 1e21 and
// in exponent notation outside it. NaN and the infinities, which JSON
// cannot hold, are written as null.
func Append(b []byte, x float32) []byte {
	b = slices.Grow(b, room)
	n := put((*[room]byte)(b[len(b):len(b)+room]), x)
	return b[:len(b)+n]
}

// AppendArray appends v to b as a JSON array of numbers, each as Append
// writes it.
func AppendArray(b []byte, v []float32) []byte {
	b = slices.Grow(b, 2+12*len(v)) // most embedding values take 11 bytes or 12
	b = append(b, '[')
	for i, x := range v {
		if cap(b)-len(b) < room+1 {
			b = slices.Grow(b, room+1+12*(len(v)-i))
		}
		n := len(b)
		if i > 0 {
			b = b[:n+1]
			b[n] = ','
			n++
		}
		n += put((*[room]byte)(b[n:n+room]), x)
		b = b[:n]
	}
	return append(b, ']')
}
