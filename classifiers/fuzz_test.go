package classifiers_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
)

// wrapShaped wraps err depth times, each layer chosen by the next two bits
// of shape: fmt.Errorf with %w, errors.Join before or after an unrelated
// error, or fmt.Errorf with two %w.
func wrapShaped(err error, depth int, shape uint64) error {
	for i := range depth {
		switch (shape >> (2 * (i % 32))) & 3 {
		case 0:
			err = fmt.Errorf("layer %d: %w", i, err)
		case 1:
			err = errors.Join(unrelated(), err)
		case 2:
			err = errors.Join(err, unrelated())
		case 3:
			err = fmt.Errorf("layer %d: %w; %w", i, unrelated(), err)
		}
	}
	return err
}

// FuzzClassifiers builds server errors from arbitrary codes, messages and
// numbers, wraps them arbitrarily, and checks that no classifier panics,
// that every verdict is a known one, and that wrapping never changes it.
func FuzzClassifiers(f *testing.F) {
	for _, code := range []string{
		"40001", "40P01", "40003", "55P03", "57014", "08000", "08006", "08007", "08P01",
		"57P01", "57P02", "57P03", "53100", "53200", "53300", "53400", "0A000",
		"25P02", "25P03", "2D000", "3B001", "23505", "23P01", "CR000", "42P01", "", "0", "08",
	} {
		f.Add(code, "", uint16(0), uint8(1), uint64(0))
	}
	f.Add("57014", "canceling statement due to statement timeout", uint16(3024), uint8(3), uint64(0b100111))
	f.Add("57014", "canceling statement due to user request", uint16(1317), uint8(2), uint64(0b1110))
	f.Add("0A000", "cached plan must not change result type", uint16(1969), uint8(4), uint64(0xe4))
	for _, n := range []uint16{1213, 1205, 3572, 3024, 1969, 1040, 1317, 1062, 1451, 1452, 0, 65535} {
		f.Add("", "", n, uint8(2), uint64(0b0110))
	}
	all := allClassifiers()
	f.Fuzz(func(t *testing.T, code, message string, number uint16, depth uint8, shape uint64) {
		pgErr := dboptest.PgError(code, message)
		myErr := dboptest.MySQLError(number, message)
		d := int(depth % 33)
		for _, base := range []error{pgErr, myErr} {
			wrapped := wrapShaped(base, d, shape)
			for _, c := range all {
				want := c.classify(base)
				if want > dbop.Ambiguous {
					t.Fatalf("%s(%v) = %d, not a known verdict", c.name, base, want)
				}
				if got := c.classify(wrapped); got != want {
					t.Fatalf("%s: wrapping %q in %d layers (shape %#x) changed the verdict from %v to %v",
						c.name, base, d, shape, want, got)
				}
			}
		}
		// In a tree holding both, Default prefers the PostgreSQL verdict: it
		// does not read MySQL errors at all (that is mysqldb's Classifier).
		pgV, myV := classifiers.Default(pgErr), classifiers.Default(myErr)
		want := pgV
		if want == dbop.Unclassified {
			want = myV
		}
		if got := classifiers.Default(wrapShaped(errors.Join(myErr, pgErr), d, shape)); got != want {
			t.Fatalf("Default(Join(%q, %q)) = %v, want %v", myErr, pgErr, got, want)
		}
	})
}
