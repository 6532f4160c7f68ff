package jsonschema

import (
	"fmt"
	"strconv"
	"strings"
)

// intRangeRegex is an RE2 expression for the decimal integers in [lo, hi] as JSON writes
// them (no leading zeros, no "-0"); hasLo and hasHi say which bounds there are.
func intRangeRegex(lo, hi int64, hasLo, hasHi bool) (string, error) {
	if hasLo && hasHi && lo > hi {
		return "", fmt.Errorf("no integer lies between the minimum %d and the maximum %d", lo, hi)
	}
	var alts []string
	// negative part: -m for m in [mlo, mhi]
	switch {
	case !hasLo && hasHi && hi < 0:
		alts = append(alts, "-(?:"+atLeast(uint64(-hi))+")")
	case !hasLo:
		alts = append(alts, "-(?:"+atLeast(1)+")")
	case lo < 0:
		top := uint64(1) // the negatives down to lo: -1 .. lo, or up to hi when hi < 0
		if hasHi && hi < 0 {
			top = uint64(-hi)
		}
		alts = append(alts, "-(?:"+between(top, uint64(-lo))+")")
	}
	// non-negative part
	if !hasHi || hi >= 0 {
		from := uint64(0)
		if hasLo && lo > 0 {
			from = uint64(lo)
		}
		if hasHi {
			alts = append(alts, between(from, uint64(hi)))
		} else {
			alts = append(alts, atLeast(from))
		}
	}
	return "(?:" + strings.Join(alts, "|") + ")", nil
}

// atLeast matches the integers from a up, without sign.
func atLeast(a uint64) string {
	d := len(strconv.FormatUint(a, 10))
	top, _ := strconv.ParseUint(strings.Repeat("9", d), 10, 64)
	return between(a, top) + fmt.Sprintf(`|[1-9]\d{%d,}`, d)
}

// between matches the integers in [a, b] without sign or leading zeros.
func between(a, b uint64) string {
	var alts []string
	for d := 1; d <= 20; d++ {
		lo, hi := uint64(0), uint64(9)
		if d > 1 {
			lo, _ = strconv.ParseUint("1"+strings.Repeat("0", d-1), 10, 64)
			hi, _ = strconv.ParseUint(strings.Repeat("9", d), 10, 64)
			if d == 20 {
				hi = ^uint64(0)
			}
		}
		x, y := max(a, lo), min(b, hi)
		if x <= y {
			alts = append(alts, sameLength(strconv.FormatUint(x, 10), strconv.FormatUint(y, 10)))
		}
		if hi >= b {
			break
		}
	}
	return strings.Join(alts, "|")
}

// sameLength matches the digit strings of len(x) from x to y (digit strings of one length
// compare as numbers).
func sameLength(x, y string) string {
	if len(x) == 0 {
		return ""
	}
	if len(x) == 1 {
		return digits(x[0], y[0])
	}
	if strings.Trim(x[1:], "0") == "" && strings.Trim(y[1:], "9") == "" {
		// a whole block (x0..y0 then any digits): without this the expression doubles per digit
		return digits(x[0], y[0]) + fmt.Sprintf(`\d{%d}`, len(x)-1)
	}
	if x[0] == y[0] {
		return string(x[0]) + "(?:" + sameLength(x[1:], y[1:]) + ")"
	}
	n := len(x) - 1
	var alts []string
	alts = append(alts, string(x[0])+"(?:"+sameLength(x[1:], strings.Repeat("9", n))+")")
	if y[0]-x[0] > 1 {
		alts = append(alts, digits(x[0]+1, y[0]-1)+fmt.Sprintf(`\d{%d}`, n))
	}
	alts = append(alts, string(y[0])+"(?:"+sameLength(strings.Repeat("0", n), y[1:])+")")
	return strings.Join(alts, "|")
}

func digits(a, b byte) string {
	if a == b {
		return string(a)
	}
	return "[" + string(a) + "-" + string(b) + "]"
}

// numRangeRegex is an RE2 expression for the JSON numbers in [lo, hi] (whole-number bounds,
// either may be absent) written without an exponent: what a State generates for a bounded
// number.
func numRangeRegex(lo, hi int64, hasLo, hasHi bool) (string, error) {
	if hasLo && hasHi && lo > hi {
		return "", fmt.Errorf("no number lies between the minimum %d and the maximum %d", lo, hi)
	}
	const frac, zeros = `(?:\.\d+)?`, `(?:\.0+)?`
	var alts []string
	// negatives: -m.f with m.f in (0, top], where top is -lo (or unbounded)
	{
		switch {
		case hasHi && hi < 0:
			// values up to hi < 0: -m.f with m.f >= -hi
			m := uint64(-hi)
			alts = append(alts, `-(?:`+sameOrAbove(m, hasLo, uint64(-lo))+`)`)
		case !hasLo:
			alts = append(alts, `-(?:0\.\d*[1-9]\d*|(?:`+atLeast(1)+`)`+frac+`)`)
		case lo < 0:
			m := uint64(-lo) // -m.f >= lo: m.f <= -lo
			neg := `0\.\d*[1-9]\d*`
			if m > 1 {
				neg += `|(?:` + between(1, m-1) + `)` + frac
			}
			neg += `|` + strconv.FormatUint(m, 10) + zeros
			alts = append(alts, `-(?:`+neg+`)`)
		}
	}
	// zero and positives: k.f with k.f in [max(lo, 0), hi]
	if !hasHi || hi >= 0 {
		from := uint64(0)
		if hasLo && lo > 0 {
			from = uint64(lo)
		}
		switch {
		case !hasHi:
			alts = append(alts, `(?:`+atLeast(from)+`)`+frac)
		case uint64(hi) == from:
			alts = append(alts, strconv.FormatUint(from, 10)+zeros)
		default:
			alts = append(alts, `(?:`+between(from, uint64(hi)-1)+`)`+frac, strconv.FormatInt(hi, 10)+zeros)
		}
		if !hasLo || lo <= 0 { // "-0" and "-0.0…" are zero too
			alts = append(alts, `-0`+zeros)
		}
	}
	return "(?:" + strings.Join(alts, "|") + ")", nil
}

// sameOrAbove matches unsigned decimals m.f >= m (and, when capped, <= top): the magnitudes
// of negative numbers at most -m.
func sameOrAbove(m uint64, capped bool, top uint64) string {
	const frac, zeros = `(?:\.\d+)?`, `(?:\.0+)?`
	if !capped {
		return strconv.FormatUint(m, 10) + frac + `|(?:` + atLeast(m+1) + `)` + frac
	}
	alts := []string{strconv.FormatUint(top, 10) + zeros}
	if top > m {
		alts = append(alts, `(?:`+between(m, top-1)+`)`+frac)
	}
	return strings.Join(alts, "|")
}
