package sqldialect

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
)

func TestNoTransaction(t *testing.T) {
	for err, want := range map[error]bool{
		errors.New("SQL logic error: cannot rollback - no transaction is active (1)"): true, // modernc.org/sqlite
		errors.New("cannot commit - no transaction is active"):                        true, // mattn/go-sqlite3
		errors.New("database is locked"):                                              false,
		nil:                                                                           false,
	} {
		if got := NoTransaction(err); got != want {
			t.Errorf("NoTransaction(%v) = %v, want %v", err, got, want)
		}
	}
}

// Swallowed turns the function's error Ambiguous on MySQL and MariaDB when
// the function went on after a doom was recorded: it returned nil, another
// error, or the doom itself after statements were seen going out after it
// (wentOn). A function that returned the doom with nothing seen after it
// is taken at its word, and so is every function on another family.
func TestSwallowed(t *testing.T) {
	doom := dbop.Classify(errors.New("deadlock"), dbop.RetryTransaction)
	returned := fmt.Errorf("step: %w", doom)
	later := errors.New("a later statement failed")
	for _, tc := range []struct {
		name      string
		family    Family
		doom      error // recorded in the transaction's state
		err       error // the function's
		wentOn    bool
		ambiguous bool
	}{
		{name: "success", family: MariaDB},
		{name: "an error, no doom", family: MariaDB, err: later},
		{name: "an error, no doom, went on", family: MariaDB, err: later, wentOn: true},
		{name: "the doom returned", family: MariaDB, doom: doom, err: returned},
		{name: "the doom returned after going on", family: MariaDB, doom: doom, err: returned, wentOn: true, ambiguous: true},
		{name: "the doom returned after going on, MySQL", family: MySQL, doom: doom, err: returned, wentOn: true, ambiguous: true},
		{name: "nil after the doom", family: MariaDB, doom: doom, ambiguous: true},
		{name: "another error after the doom", family: MariaDB, doom: doom, err: later, ambiguous: true},
		{name: "the doom returned after going on, PostgreSQL", family: Postgres, doom: doom, err: returned, wentOn: true},
		{name: "nil after the doom, PostgreSQL", family: Postgres, doom: doom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := new(txmark.State)
			if tc.doom != nil {
				s.Doom(tc.doom)
			}
			got := Swallowed(txmark.WithState(context.Background(), s), tc.family, "test", tc.err, tc.wentOn)
			if !tc.ambiguous {
				if got != tc.err {
					t.Errorf("Swallowed = %v, want the function's error %v as it is", got, tc.err)
				}
				return
			}
			if v := dbop.VerdictOf(got); v != dbop.Ambiguous {
				t.Errorf("Swallowed = %v (%v), want ambiguous", got, v)
			}
			if !errors.Is(got, tc.doom) || (tc.err != nil && !errors.Is(got, tc.err)) {
				t.Errorf("Swallowed = %v, want it to wrap the doom and the function's error", got)
			}
		})
	}
}

// SwallowedSQLite rolls back only when the function went on after an
// error (a doom recorded and nil or another error returned, an error
// returned after statements were seen going out past an error (wentOn),
// or a nil return after the context ended), and turns the outcome
// Ambiguous only when the ROLLBACK finds that SQLite had ended the
// transaction.
func TestSwallowedSQLite(t *testing.T) {
	doom := dbop.Classify(errors.New("interrupted"), dbop.RetryTransaction)
	later := errors.New("a later statement failed")
	ended := errors.New("SQL logic error: cannot rollback - no transaction is active (1)")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		doom       error // recorded in the transaction's state
		err        error // the function's
		rbErr      error // the ROLLBACK's
		wentOn     bool  // statements were seen going out after an error
		rolledBack bool
		ambiguous  bool
	}{
		{name: "success", ctx: context.Background()},
		{name: "an error, no doom", ctx: context.Background(), err: later},
		{name: "the doom returned", ctx: context.Background(), doom: doom, err: fmt.Errorf("step: %w", doom)},
		{name: "nil after the doom, open", ctx: context.Background(), doom: doom, rolledBack: true},
		{name: "nil after the doom, ended", ctx: context.Background(), doom: doom, rbErr: ended, rolledBack: true, ambiguous: true},
		{name: "another error after the doom, ended", ctx: context.Background(), doom: doom, err: later, rbErr: ended, rolledBack: true, ambiguous: true},
		{name: "another error after the doom, rollback failed", ctx: context.Background(), doom: doom, err: later, rbErr: errors.New("disk I/O error"), rolledBack: true},
		{name: "nil after the context ended, ended", ctx: cancelled, rbErr: ended, rolledBack: true, ambiguous: true},
		{name: "nil after the context ended, open", ctx: cancelled, rolledBack: true},
		{name: "an error after the context ended", ctx: cancelled, err: later, rbErr: ended},
		{name: "the doom returned after going on, ended", ctx: context.Background(), doom: doom, err: fmt.Errorf("step: %w", doom), wentOn: true, rbErr: ended, rolledBack: true, ambiguous: true},
		{name: "the doom returned after going on, open", ctx: context.Background(), doom: doom, err: fmt.Errorf("step: %w", doom), wentOn: true, rolledBack: true},
		{name: "an error, no doom, after going on, ended", ctx: context.Background(), err: later, wentOn: true, rbErr: ended, rolledBack: true, ambiguous: true},
		{name: "an error, no doom, after going on, open", ctx: context.Background(), err: later, wentOn: true, rolledBack: true},
		{name: "success after going on", ctx: context.Background(), wentOn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := new(txmark.State)
			if tc.doom != nil {
				s.Doom(tc.doom)
			}
			rolledBack := false
			got := SwallowedSQLite(txmark.WithState(tc.ctx, s), "test", tc.err, tc.wentOn, func() error {
				rolledBack = true
				return tc.rbErr
			})
			if rolledBack != tc.rolledBack {
				t.Errorf("rolled back: %v, want %v", rolledBack, tc.rolledBack)
			}
			if !tc.ambiguous {
				if got != tc.err {
					t.Errorf("SwallowedSQLite = %v, want the function's error %v as it is", got, tc.err)
				}
				return
			}
			if v := dbop.VerdictOf(got); v != dbop.Ambiguous {
				t.Errorf("SwallowedSQLite = %v (%v), want ambiguous", got, v)
			}
			if !errors.Is(got, tc.rbErr) || (tc.doom != nil && !errors.Is(got, tc.doom)) || (tc.err != nil && !errors.Is(got, tc.err)) {
				t.Errorf("SwallowedSQLite = %v, want it to wrap the ROLLBACK's error, the doom and the function's error", got)
			}
		})
	}
}
