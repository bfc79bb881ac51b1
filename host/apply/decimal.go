package apply

import (
	"bytes"
	"math/big"
)

// decimalSum adds decimal numbers exactly: the float increments of a batch
// (HINCRBYFLOAT, ZINCRBY) are summed here and sent to Redis once, so the
// batch adds no rounding of its own. Sums that fit 18 digits stay in an
// int64 (the common case: prices); others move to big.Rat.
// The zero value is 0.
type decimalSum struct {
	mant  int64
	scale int // digits after the point in mant
	big   *big.Rat
	// bigScale is the most fraction digits any input had, once in big.
	bigScale int
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// add adds s, a number in the grammar policy accepts. It reports false when
// s is not a decimal number at all.
func (d *decimalSum) add(s string) bool {
	if d.big == nil {
		if m, sc, ok := parseSmallDecimal(s); ok {
			if d.addSmall(m, sc) {
				return true
			}
		}
		d.toBig()
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return false
	}
	d.big.Add(d.big, r)
	d.bigScale = max(d.bigScale, fractionDigits(r))
	return true
}

func (d *decimalSum) addSmall(m int64, sc int) bool {
	mant, scale := d.mant, d.scale
	for scale < sc {
		if mant > 922337203685477580 || mant < -922337203685477580 {
			return false
		}
		mant *= 10
		scale++
	}
	for sc < scale {
		if m > 922337203685477580 || m < -922337203685477580 {
			return false
		}
		m *= 10
		sc++
	}
	sum := mant + m
	if (m > 0 && sum < mant) || (m < 0 && sum > mant) {
		return false
	}
	d.mant, d.scale = sum, scale
	return true
}

func (d *decimalSum) toBig() {
	d.big = new(big.Rat).SetFrac(big.NewInt(d.mant), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.scale)), nil))
	d.bigScale = d.scale
}

// String formats the sum as appendTo does.
func (d *decimalSum) String() string { return string(d.appendTo(nil)) }

// appendTo appends the sum as a plain decimal, without exponent or
// trailing zeros, which Redis' HINCRBYFLOAT and ZINCRBY read exactly.
func (d *decimalSum) appendTo(b []byte) []byte {
	start := len(b)
	if d.big != nil {
		b = append(b, d.big.FloatString(d.bigScale)...)
	} else {
		b = appendSmall(b, d.mant, d.scale)
	}
	if bytes.IndexByte(b[start:], '.') >= 0 {
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
		if b[len(b)-1] == '.' {
			b = b[:len(b)-1]
		}
	}
	if s := b[start:]; len(s) == 0 || string(s) == "-0" {
		b = append(b[:start], '0')
	}
	return b
}

// appendSmall appends m / 10^scale.
func appendSmall(b []byte, m int64, scale int) []byte {
	neg := m < 0
	u := uint64(m)
	if neg {
		u = uint64(-m)
	}
	var buf [24]byte // least significant first; int64 has 19 digits, scale is at most 18
	digits := buf[:0]
	for u > 0 || len(digits) <= scale {
		digits = append(digits, byte('0'+u%10))
		u /= 10
	}
	if neg {
		b = append(b, '-')
	}
	for i := len(digits) - 1; i >= 0; i-- {
		b = append(b, digits[i])
		if i == scale && scale > 0 {
			b = append(b, '.')
		}
	}
	return b
}

// parseSmallDecimal reads [-+]digits[.digits] with at most 18 digits in all.
func parseSmallDecimal(s string) (mant int64, scale int, ok bool) {
	i := 0
	neg := false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	digits, point := 0, false
	any := false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			any = true
			if mant == 0 && c == '0' {
				if point {
					scale++
				}
				continue
			}
			digits++
			if digits > 18 {
				return 0, 0, false
			}
			mant = mant*10 + int64(c-'0')
			if point {
				scale++
			}
		case c == '.' && !point:
			point = true
		default:
			return 0, 0, false
		}
	}
	if !any || scale >= len(pow10) {
		return 0, 0, false
	}
	if neg {
		mant = -mant
	}
	return mant, scale, true
}

// fractionDigits is how many digits after the point r needs exactly: r is a
// sum of decimals, so its denominator is 2^a * 5^b and it needs max(a, b).
func fractionDigits(r *big.Rat) int {
	den := new(big.Int).Set(r.Denom())
	two, five := big.NewInt(2), big.NewInt(5)
	mod := new(big.Int)
	a, b := 0, 0
	for den.Cmp(big.NewInt(1)) > 0 {
		if mod.Mod(den, two).Sign() == 0 {
			den.Quo(den, two)
			a++
			continue
		}
		if mod.Mod(den, five).Sign() == 0 {
			den.Quo(den, five)
			b++
			continue
		}
		return 40 // not a decimal; cannot happen for decimal inputs
	}
	return max(a, b)
}
