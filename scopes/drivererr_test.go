package scopes_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5/pgconn"
)

// Whatever path an error takes through the scopes, errors.As still reaches
// the driver's error value.
func TestDriverErrorsStayReachable(t *testing.T) {
	pgErr := func() error { return dboptest.PgError("40001", "could not serialize access") }
	pgClassifier := func(err error) dbop.Verdict {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "40001" {
			return dbop.RetryTransaction
		}
		return dbop.Unclassified
	}
	inTx := func(rec *dboptest.Recorder, step func(ctx context.Context, tx *dboptest.Tx) error) dbop.Op[int] {
		return scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) {
			return 0, step(ctx, tx)
		}, scopes.ClassifyBy(pgClassifier))
	}
	exec := func(ctx context.Context, tx *dboptest.Tx) error { return tx.Exec(ctx, "UPDATE b") }
	inSavepoint := func(ctx context.Context, tx *dboptest.Tx) error {
		_, err := dbop.Op[int](func(ctx context.Context) (int, error) {
			return 0, tx.Exec(ctx, "UPDATE b")
		}).With(scopes.InSavepoint(tx)).Run(ctx)
		return err
	}

	tests := []struct {
		name   string
		fail   map[string]error
		step   func(ctx context.Context, tx *dboptest.Tx) error
		wantAs func(error) bool
	}{
		{"BEGIN", map[string]error{"BEGIN": pgErr()}, exec, asPgError},
		{"op", map[string]error{"UPDATE b": pgErr()}, exec, asPgError},
		{"op, with a failed ROLLBACK", map[string]error{"UPDATE b": pgErr(), "ROLLBACK": dboptest.NetworkError()}, exec,
			func(err error) bool { return asPgError(err) && asNetError(err) }},
		{"ambiguous COMMIT", map[string]error{"COMMIT": dboptest.NetworkError()}, exec, asNetError},
		{"COMMIT answered by the server", map[string]error{"COMMIT": pgErr()}, exec, asPgError},
		{"SAVEPOINT", map[string]error{"SAVEPOINT dbop_sp_1": pgErr()}, inSavepoint, asPgError},
		{"in savepoint", map[string]error{"UPDATE b": pgErr()}, inSavepoint, asPgError},
		{"in savepoint, with a failed ROLLBACK TO", map[string]error{
			"UPDATE b":                        errors.New("unclassified"),
			"ROLLBACK TO SAVEPOINT dbop_sp_1": pgErr(),
		}, inSavepoint, asPgError},
		{"RELEASE", map[string]error{"RELEASE SAVEPOINT dbop_sp_1": pgErr()}, inSavepoint, asPgError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec dboptest.Recorder
			for stmt, err := range tt.fail {
				rec.FailNext(stmt, err)
			}
			_, err := inTx(&rec, tt.step).Run(t.Context())
			if err == nil || !tt.wantAs(err) {
				t.Errorf("driver error not reachable through %v", err)
			}
		})
	}
}

func asPgError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

func asNetError(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}
