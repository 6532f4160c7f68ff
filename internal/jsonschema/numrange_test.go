package jsonschema

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"
)

// TestIntRangeRegex checks the expressions against the bounds themselves, on the integers
// around every bound and on random ones.
func TestIntRangeRegex(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	type bounds struct {
		lo, hi       int64
		hasLo, hasHi bool
	}
	cases := []bounds{{0, 100, true, true}, {1, 0, true, false}, {0, 0, false, true}, {-5, 5, true, true},
		{-120, -7, true, true}, {17, 0, true, false}, {0, -3, false, true}, {123, 4567, true, true},
		{-1000000, 999, true, true}, {0, 0, false, false}, {99, 100, true, true}, {0, 9, true, true}}
	for range 40 {
		a, b := r.Int64N(2000000)-1000000, r.Int64N(2000000)-1000000
		cases = append(cases, bounds{min(a, b), max(a, b), r.IntN(4) != 0, r.IntN(4) != 0})
	}
	for _, c := range cases {
		expr, err := intRangeRegex(c.lo, c.hi, c.hasLo, c.hasHi)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`^(?:` + expr + `)$`)
		check := func(v int64) {
			want := (!c.hasLo || v >= c.lo) && (!c.hasHi || v <= c.hi)
			if got := re.MatchString(strconv.FormatInt(v, 10)); got != want {
				t.Fatalf("%+v: %d matched %v, want %v (%s)", c, v, got, want, expr)
			}
		}
		for _, v := range []int64{c.lo, c.hi, 0, 1, -1, 9, 10, 99, 100, 1000000, -1000000} {
			for d := int64(-2); d <= 2; d++ {
				check(v + d)
			}
		}
		for range 300 {
			check(r.Int64N(4000000) - 2000000)
		}
		for _, s := range []string{"-0", "00", "01", "-01", "+1", ""} {
			if re.MatchString(s) {
				t.Fatalf("%+v: %q matched", c, s)
			}
		}
	}
	if _, err := intRangeRegex(5, 4, true, true); err == nil {
		t.Fatal("an empty range compiled")
	}
}

// TestNumRangeRegex checks bounded-number expressions against the bounds with
// strconv.ParseFloat, on numbers near every bound, with and without fractions.
func TestNumRangeRegex(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	type bounds struct {
		lo, hi       int64
		hasLo, hasHi bool
	}
	cases := []bounds{{0, 1, true, true}, {0, 100, true, true}, {-1, 1, true, true}, {0, 0, true, false},
		{0, 0, false, true}, {-5, -2, true, true}, {3, 3, true, true}, {0, -3, false, true}, {-7, 0, true, false},
		{0, 0, false, false}, {-3, 0, true, true}, {0, 0, true, true}}
	for range 30 {
		a, b := r.Int64N(2000)-1000, r.Int64N(2000)-1000
		cases = append(cases, bounds{min(a, b), max(a, b), r.IntN(4) != 0, r.IntN(4) != 0})
	}
	for _, c := range cases {
		expr, err := numRangeRegex(c.lo, c.hi, c.hasLo, c.hasHi)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`^(?:` + expr + `)$`)
		num := regexp.MustCompile(`^-?(0|[1-9]\d*)(\.\d+)?$`)
		check := func(s string) {
			f, err := strconv.ParseFloat(s, 64)
			want := err == nil && num.MatchString(s) && (!c.hasLo || f >= float64(c.lo)) && (!c.hasHi || f <= float64(c.hi))
			if got := re.MatchString(s); got != want {
				t.Fatalf("%+v: %q matched %v, want %v (%s)", c, s, got, want, expr)
			}
		}
		for _, v := range []int64{c.lo, c.hi, 0, 1, -1, 10, -10} {
			for d := int64(-2); d <= 2; d++ {
				x := v + d
				for _, f := range []string{"", ".0", ".00", ".5", ".05", ".000001", ".9999"} {
					check(strconv.FormatInt(x, 10) + f)
					if x == 0 {
						check("-0" + f)
					}
				}
			}
		}
		for range 200 {
			check(strconv.FormatFloat(r.Float64()*4000-2000, 'f', r.IntN(4), 64))
		}
		for _, s := range []string{"00", "01.5", "1.", ".5", "+1", "1e3", ""} {
			check(s)
		}
	}
}
