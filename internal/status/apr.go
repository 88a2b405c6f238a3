package status

import "math"

// aprG formats f as mod_status's "%g" does: through APR's apr_snprintf, not
// C's printf. APR writes six significant digits like C, but drops the zero
// before the point (".0163934"), writes large numbers without an exponent
// until they have more than four digits beyond the six ("12345700"), and
// writes exponents without padding ("1.5e-5"). A ?auto reader that parses
// Apache's output must read ours the same way, so this is a port of
// apr_gcvt (apr/strings/apr_snprintf.c, with precision 6 and no '#' flag),
// quirks included; a test checks it against values libapr printed.
//
// f must be finite (APR does not special-case NaN or infinities for %g).
func aprG(f float64) string {
	const ndigit = 6
	var digits [aprNDig]byte
	p1, decpt, sign := aprECvt(f, ndigit, &digits)
	out := make([]byte, 0, 24)
	if sign {
		out = append(out, '-')
	}
	n := ndigit
	for i := n - 1; i > 0 && p1[i] == '0'; i-- {
		n--
	}
	if (decpt >= 0 && decpt-n > 4) || (decpt < 0 && decpt < -3) { // E-style
		decpt--
		out = append(out, p1[0], '.')
		out = append(out, p1[1:n]...)
		out = append(out, 'e')
		if decpt < 0 {
			decpt = -decpt
			out = append(out, '-')
		} else {
			out = append(out, '+')
		}
		if decpt/100 > 0 {
			out = append(out, byte(decpt/100)+'0')
		}
		if decpt/10 > 0 {
			out = append(out, byte(decpt%100/10)+'0')
		}
		out = append(out, byte(decpt%10)+'0')
	} else {
		if decpt <= 0 {
			if p1[0] != '0' {
				out = append(out, '.')
			}
			for ; decpt < 0; decpt++ {
				out = append(out, '0')
			}
		}
		for i := 1; i <= n; i++ {
			out = append(out, p1[i-1])
			if i == decpt {
				out = append(out, '.')
			}
		}
		if n < decpt {
			for ; n < decpt; n++ {
				out = append(out, '0')
			}
			out = append(out, '.')
		}
	}
	if out[len(out)-1] == '.' {
		out = out[:len(out)-1]
	}
	return string(out)
}

// aprNDig is APR's NDIG: the size of apr_cvt's digit buffer.
const aprNDig = 80

// aprECvt is apr_ecvt: the first ndigits+1 digits of |arg| (rounded at
// the ndigits-th, with its carry), the position of the decimal point and
// the sign. It reproduces APR's arithmetic step by step (modf, the +.03
// guard of the integer part); each product is converted to float64 so the
// compiler cannot fuse it into a multiply-add, which would change digits.
func aprECvt(arg float64, ndigits int, buf *[aprNDig]byte) (digits []byte, decpt int, sign bool) {
	if ndigits >= aprNDig-1 {
		ndigits = aprNDig - 2
	}
	r2 := 0
	if arg < 0 {
		sign = true
		arg = -arg
	}
	fi, frac := math.Modf(arg)
	arg = frac
	p := 0
	if fi != 0 {
		var tmp [aprNDig]byte
		p1 := aprNDig
		for p1 > 0 && fi != 0 {
			var fj float64
			fi, fj = math.Modf(float64(fi / 10))
			p1--
			tmp[p1] = byte(int(float64((fj+.03)*10))) + '0'
			r2++
		}
		for ; p1 < aprNDig; p1++ {
			buf[p] = tmp[p1]
			p++
		}
	} else if arg > 0 {
		for {
			fj := float64(arg * 10)
			if fj >= 1 {
				break
			}
			arg = fj
			r2--
		}
	}
	last := ndigits // eflag: the digit count does not depend on r2
	decpt = r2
	for p <= last && p < aprNDig {
		var fj float64
		fj, arg = math.Modf(float64(arg * 10))
		buf[p] = byte(int(fj)) + '0'
		p++
	}
	if last >= aprNDig {
		return buf[:aprNDig-1], decpt, sign
	}
	p = last
	buf[last] += 5
	for i := last; buf[i] > '9'; {
		buf[i] = '0'
		if i > 0 {
			i--
			buf[i]++
		} else {
			buf[i] = '1'
			decpt++
		}
	}
	return buf[:p], decpt, sign
}
