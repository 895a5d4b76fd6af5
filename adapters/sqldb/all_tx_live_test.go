package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
)

// TestAllOfSavepointStepsInOneTransaction: an All of two savepoint steps,
// each with its own retry, on one PostgreSQL transaction. Both scopes are
// at depth 1 and name their savepoint alike; run side by side, A's first
// attempt failing after B took its savepoint would roll back to B's (the
// newest of that name), undoing B's row and keeping A's, and A's retry
// would write again: A committed twice, B never, success reported. A
// waits a moment for B to take its savepoint: inside a transaction All
// runs them one at a time, so B never does, and each step's work commits
// once.
func TestAllOfSavepointStepsInOneTransaction(t *testing.T) {
	db := openPostgres(t)
	log := table(t, db, "sqldb_all_tx_log", "(id serial PRIMARY KEY, k text NOT NULL)")
	aHasSP, bHasSP, aDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	aRuns, bRuns, overlapped := 0, 0, false
	op := sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) ([]int, error) {
		ins := func(ctx context.Context, k string) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO "+log+" (k) VALUES ($1)", k)
			return err
		}
		a := dbop.Op[int](func(ctx context.Context) (int, error) {
			aRuns++
			if err := ins(ctx, "A"); err != nil {
				return 0, err
			}
			if aRuns == 1 {
				close(aHasSP)
				select {
				case <-bHasSP:
					overlapped = true
				case <-time.After(300 * time.Millisecond):
				}
				return 0, dbop.Classify(errors.New("lock timeout (statement-level)"), dbop.RetryStatement)
			}
			close(aDone)
			return 1, nil
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), sqldb.InSavepoint(tx, sqldb.Postgres))
		b := dbop.Op[int](func(ctx context.Context) (int, error) {
			bRuns++
			if err := ins(ctx, "B"); err != nil {
				return 0, err
			}
			close(bHasSP)
			select {
			case <-aDone:
			case <-time.After(5 * time.Second):
			}
			return 2, nil
		}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3)), sqldb.InSavepoint(tx, sqldb.Postgres))
		gated := dbop.Op[int](func(ctx context.Context) (int, error) {
			<-aHasSP // B starts once A has written its first row
			return b(ctx)
		})
		return dbop.All(0, a, gated).Run(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := op.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	na := scalar[int](t, db, "SELECT count(*) FROM "+log+" WHERE k = 'A'")
	nb := scalar[int](t, db, "SELECT count(*) FROM "+log+" WHERE k = 'B'")
	if aRuns != 2 || bRuns != 1 {
		t.Errorf("A ran %d times (want 2: its first attempt fails), B %d (want 1)", aRuns, bRuns)
	}
	if overlapped || na != 1 || nb != 1 || len(v) != 2 || v[0] != 1 || v[1] != 2 {
		t.Errorf("All returned %v; B took its savepoint while A ran: %v; committed A=%d B=%d (want 1 and 1)", v, overlapped, na, nb)
	}
}
