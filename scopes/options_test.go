package scopes_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

// A transaction-only option is not a SavepointOption, so that
// scopes.InSavepoint(tx, scopes.ReadOnly()) does not compile (it used to
// panic when built); the options that fit both are Options.
func TestOptionKinds(t *testing.T) {
	tests := []struct {
		name          string
		opt           scopes.TxOption
		wantSavepoint bool
	}{
		{"ReadOnly", scopes.ReadOnly(), false},
		{"CommitOutcome", scopes.CommitOutcome(func(error) dbop.Verdict { return dbop.Ambiguous }), false},
		{"ClassifyBy", scopes.ClassifyBy(classifier), true},
		{"RollbackTimeout", scopes.RollbackTimeout(time.Second), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, isSavepoint := tt.opt.(scopes.SavepointOption)
			_, isBoth := tt.opt.(scopes.Option)
			if isSavepoint != tt.wantSavepoint || isBoth != tt.wantSavepoint {
				t.Errorf("a SavepointOption: %v, an Option: %v; want %v for both", isSavepoint, isBoth, tt.wantSavepoint)
			}
		})
	}
}

// ClassifyBy asks its classifiers in the order given, whether they come in
// one option or several, and the first with an opinion decides: in InTx
// and in InSavepoint alike.
func TestClassifyByAsksInOrder(t *testing.T) {
	errOther := errors.New("other")
	var asked []string
	named := func(name string, verdicts map[error]dbop.Verdict) dbop.Classifier {
		return func(err error) dbop.Verdict {
			asked = append(asked, name)
			for target, v := range verdicts {
				if errors.Is(err, target) {
					return v
				}
			}
			return dbop.Unclassified
		}
	}
	first := named("first", map[error]dbop.Verdict{errLockTimeout: dbop.RetryStatement})
	second := named("second", map[error]dbop.Verdict{errLockTimeout: dbop.NotRetryable, errOther: dbop.RetryTransaction})
	options := []struct {
		name string
		opts []scopes.Option
	}{
		{"one option", []scopes.Option{scopes.ClassifyBy(first, second)}},
		{"two options", []scopes.Option{scopes.ClassifyBy(first), scopes.ClassifyBy(second)}},
	}
	tests := []struct {
		err       error
		want      dbop.Verdict
		wantAsked []string
	}{
		{errLockTimeout, dbop.RetryStatement, []string{"first"}},
		{errOther, dbop.RetryTransaction, []string{"first", "second"}},
		{errUnique, dbop.Unclassified, []string{"first", "second"}},
	}
	scopesUnderTest := []struct {
		name string
		run  func(rec *dboptest.Recorder, opts []scopes.Option) error
	}{
		{"InTx", func(rec *dboptest.Recorder, opts []scopes.Option) error {
			var txOpts []scopes.TxOption
			for _, o := range opts {
				txOpts = append(txOpts, o)
			}
			_, err := scopes.Do(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) error {
				return tx.Exec(ctx, "UPDATE a")
			}, txOpts...).Run(context.Background())
			return err
		}},
		{"InSavepoint", func(rec *dboptest.Recorder, opts []scopes.Option) error {
			tx, err := rec.Begin(context.Background(), scopes.BeginOptions{})
			if err != nil {
				return err
			}
			var spOpts []scopes.SavepointOption
			for _, o := range opts {
				spOpts = append(spOpts, o)
			}
			step := dbop.Op[int](func(ctx context.Context) (int, error) { return 0, tx.Exec(ctx, "UPDATE a") })
			_, err = step.With(scopes.InSavepoint(tx, spOpts...)).Run(dbop.WithinTx(context.Background()))
			return err
		}},
	}
	for _, scope := range scopesUnderTest {
		for _, o := range options {
			for _, tt := range tests {
				t.Run(scope.name+"/"+o.name+"/"+tt.err.Error(), func(t *testing.T) {
					var rec dboptest.Recorder
					rec.FailNext("UPDATE a", tt.err)
					asked = nil
					err := scope.run(&rec, o.opts)
					if !errors.Is(err, tt.err) {
						t.Fatalf("err = %v, want the statement's error", err)
					}
					if got := dbop.VerdictOf(err); got != tt.want {
						t.Errorf("VerdictOf = %v, want %v", got, tt.want)
					}
					if diff := cmp.Diff(tt.wantAsked, asked); diff != "" {
						t.Errorf("classifiers asked (-want +got):\n%s", diff)
					}
				})
			}
		}
	}
}
