// Package ftoa writes float32 values as JSON numbers: the shortest decimal
// that reads back as the same float32, byte for byte what encoding/json
// writes for a float32 ("0.012345679", "-0.5", "1e-7", "1.5e+21").
//
// Every embedding leaves the server and the batch jobs as text hundreds of
// numbers long, so this formatting is most of the CPU of a JSON response
// or a JSONL output once the model is cheap (a static model embeds a
// sentence in about 2 µs; its 384 numbers took about 13 µs through
// strconv.AppendFloat and 35 µs through encoding/json on this project's
// machines). strconv and encoding/json are general (any precision, any
// format, float64 too, reflection); this is Ryū's float32 algorithm (Ulf
// Adams, "Ryū: fast float-to-string conversion", PLDI 2018) specialised to
// the one format JSON needs, with the digits written two at a time. Its
// output is checked against strconv for every one of the 2^32 float32 bit
// patterns (TestAllFloat32, run with EMBEDD_FTOA_ALL=1; a sample and every
// power-of-ten and exponent boundary otherwise).
package ftoa

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/bits"
	"slices"
)

const (
	mantissaBits = 23
	bias         = 127
	pow5InvBits  = 59 // bits of the entries of pow5Inv
	pow5Bits     = 61 // bits of the entries of pow5
)

// pow5Inv[i] is 2^(pow5bits(i)-1+pow5InvBits) / 5^i, rounded up, and
// pow5[i] the top pow5Bits bits of 5^i: the factors that scale a binary
// float32 to a decimal one (Ryū's FLOAT_POW5_INV_SPLIT and FLOAT_POW5_SPLIT).
var pow5Inv, pow5 = tables()

func tables() (inv [31]uint64, pos [47]uint64) {
	one := big.NewInt(1)
	p := big.NewInt(1)
	for i := range len(pos) {
		n := p.BitLen()
		if i < len(inv) {
			q := new(big.Int).Lsh(one, uint(n-1+pow5InvBits))
			q.Quo(q, p)
			inv[i] = q.Uint64() + 1
		}
		if n >= pow5Bits {
			pos[i] = new(big.Int).Rsh(p, uint(n-pow5Bits)).Uint64()
		} else {
			pos[i] = new(big.Int).Lsh(p, uint(pow5Bits-n)).Uint64()
		}
		p.Mul(p, big.NewInt(5))
	}
	return inv, pos
}

// pow5bits is the bit length of 5^e, for 0 <= e <= 3528.
func pow5bits(e int32) int32 { return int32((uint32(e)*1217359)>>19) + 1 }

// log10Pow2 is floor(log10(2^e)), for 0 <= e <= 1650.
func log10Pow2(e int32) int32 { return int32((uint32(e) * 78913) >> 18) }

// log10Pow5 is floor(log10(5^e)), for 0 <= e <= 2620.
func log10Pow5(e int32) int32 { return int32((uint32(e) * 732923) >> 20) }

func multipleOfPow5(v uint32, p int32) bool {
	n := int32(0)
	for v%5 == 0 {
		v /= 5
		n++
	}
	return n >= p
}

func multipleOfPow2(v uint32, p int32) bool { return int32(bits.TrailingZeros32(v)) >= p }

// mulShift is (m * factor) >> shift, for shift > 32.
func mulShift(m uint32, factor uint64, shift int32) uint32 {
	lo := uint64(m) * (factor & 0xffffffff)
	hi := uint64(m) * (factor >> 32)
	return uint32(((lo >> 32) + hi) >> (shift - 32))
}

// shortest returns the shortest decimal digits × 10^exp that reads back as
// the finite, nonzero float32 with exponent field e and mantissa field m,
// the one nearest the exact value where several are as short; digits has
// no trailing zeros.
func shortest(m, e uint32) (digits uint32, exp int32) {
	var e2 int32
	var m2 uint32
	if e == 0 {
		e2, m2 = 1-bias-mantissaBits-2, m
	} else {
		e2, m2 = int32(e)-bias-mantissaBits-2, 1<<mantissaBits|m
	}
	even := m2&1 == 0
	// The interval of decimals that read back as this float: mv is the
	// value, mp and mm its bounds, all times 4.
	mv := 4 * m2
	mp := 4*m2 + 2
	mmShift := uint32(0)
	if m != 0 || e <= 1 {
		mmShift = 1
	}
	mm := 4*m2 - 1 - mmShift

	var vr, vp, vm uint32
	var e10 int32
	var vmTrailingZeros, vrTrailingZeros bool
	var lastRemoved uint32
	if e2 >= 0 {
		q := log10Pow2(e2)
		e10 = q
		k := pow5InvBits + pow5bits(q) - 1
		i := -e2 + q + k
		vr = mulShift(mv, pow5Inv[q], i)
		vp = mulShift(mp, pow5Inv[q], i)
		vm = mulShift(mm, pow5Inv[q], i)
		if q != 0 && (vp-1)/10 <= vm/10 {
			l := pow5InvBits + pow5bits(q-1) - 1
			lastRemoved = mulShift(mv, pow5Inv[q-1], -e2+q-1+l) % 10
		}
		if q <= 9 {
			switch {
			case mv%5 == 0:
				vrTrailingZeros = multipleOfPow5(mv, q)
			case even:
				vmTrailingZeros = multipleOfPow5(mm, q)
			case multipleOfPow5(mp, q):
				vp--
			}
		}
	} else {
		q := log10Pow5(-e2)
		e10 = q + e2
		i := -e2 - q
		k := pow5bits(i) - pow5Bits
		j := q - k
		vr = mulShift(mv, pow5[i], j)
		vp = mulShift(mp, pow5[i], j)
		vm = mulShift(mm, pow5[i], j)
		if q != 0 && (vp-1)/10 <= vm/10 {
			j = q - 1 - (pow5bits(i+1) - pow5Bits)
			lastRemoved = mulShift(mv, pow5[i+1], j) % 10
		}
		switch {
		case q <= 1:
			vrTrailingZeros = true
			if even {
				vmTrailingZeros = mmShift == 1
			} else {
				vp--
			}
		case q < 31:
			vrTrailingZeros = multipleOfPow2(mv, q-1)
		}
	}

	// Drop digits while the interval still holds a shorter decimal.
	removed := int32(0)
	if vmTrailingZeros || vrTrailingZeros {
		for vp/10 > vm/10 {
			vmTrailingZeros = vmTrailingZeros && vm%10 == 0
			vrTrailingZeros = vrTrailingZeros && lastRemoved == 0
			lastRemoved = vr % 10
			vr, vp, vm = vr/10, vp/10, vm/10
			removed++
		}
		if vmTrailingZeros {
			for vm%10 == 0 {
				vrTrailingZeros = vrTrailingZeros && lastRemoved == 0
				lastRemoved = vr % 10
				vr, vp, vm = vr/10, vp/10, vm/10
				removed++
			}
		}
		if vrTrailingZeros && lastRemoved == 5 && vr%2 == 0 && m != 0 {
			// Exactly halfway: round to even, except at a power of two,
			// where strconv's Dragonbox rounds up (only 2^-12 has such a
			// tie among float32s).
			lastRemoved = 4
		}
		digits = vr
		if (vr == vm && (!even || !vmTrailingZeros)) || lastRemoved >= 5 {
			digits++
		}
	} else {
		for vp/10 > vm/10 {
			lastRemoved = vr % 10
			vr, vp, vm = vr/10, vp/10, vm/10
			removed++
		}
		digits = vr
		if vr == vm || lastRemoved >= 5 {
			digits++
		}
	}
	exp = e10 + removed
	for digits%10 == 0 { // rounding up can end in zeros (9.99 -> 10)
		digits /= 10
		exp++
	}
	return digits, exp
}

// render8 returns n < 10^8 as 8 ASCII digits with leading zeros, the first
// in the lowest byte (SWAR: the two halves' hundreds, then tens, are found
// in every lane of one word at once).
func render8(n uint32) uint64 {
	x := uint64(n/10000) | uint64(n%10000)<<32 // 4 digits a 32-bit lane
	hundreds := (x * 10486 >> 20) & 0x0000007f0000007f
	x = hundreds | (x-hundreds*100)<<16 // 2 digits a 16-bit lane
	tens := (x * 103 >> 10) & 0x000f000f000f000f
	x = tens | (x-tens*10)<<8 // 1 digit a byte
	return x | 0x3030303030303030
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
	zeros8 = 0x3030303030303030 // "00000000"
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
	e, m := (u>>mantissaBits)&0xff, u&(1<<mantissaBits-1)
	if e == 0xff {
		copy(out[:], "null")
		return 4
	}
	i := 0
	if u>>31 != 0 {
		out[0] = '-'
		i = 1
	}
	d, exp := shortest(m, e)
	// The digits are first, then the nd-1 others in rest, one a byte from
	// the lowest, all in registers (a round trip through memory stalls on
	// store forwarding).
	nd := numDigits(d)
	var first byte
	var rest uint64
	if nd == 9 {
		first, rest = byte('0'+d/100000000), render8(d%100000000)
	} else {
		w := render8(d) >> (8 * (8 - nd)) // without the leading zeros
		first, rest = byte(w), w>>8
	}
	point := nd + int(exp) // digits before the decimal point
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
