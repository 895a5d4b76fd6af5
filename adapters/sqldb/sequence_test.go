package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/internal/testdb"
)

// A retry around a Then or an All of transactions runs the whole again
// only while none of its steps has committed: once one has, running it
// again would apply that step twice. Here step A commits and step B then
// fails once with a real SQLITE_BUSY_SNAPSHOT (RetryTransaction): the retry
// returns B's error with ErrAlreadyCommitted, A applied once and B not at
// all. A retry marked Idempotent runs the whole again, by name. A failure
// before any commit (B first) is retried as before.
func TestRetryAroundStepsNeverRunsACommittedStepAgain(t *testing.T) {
	snapshot := dboptest.SQLiteBusySnapshot(t)
	type group func(a, b dbop.Op[int]) dbop.Op[int]
	then := func(a, b dbop.Op[int]) dbop.Op[int] {
		return dbop.Then(a, func(ctx context.Context, _ int) (int, error) { return b.Run(ctx) })
	}
	all := func(a, b dbop.Op[int]) dbop.Op[int] {
		return dbop.Then(dbop.All(1, a, b), func(_ context.Context, vs []int) (int, error) { return len(vs), nil })
	}
	for _, c := range []struct {
		name       string
		group      group
		idempotent bool
		bFirst     bool // B fails before A commits
		wantA      int
		wantB      int
		wantErr    error // nil: success
	}{
		{"Then", then, false, false, 1, 0, dbop.ErrAlreadyCommitted},
		{"All", all, false, false, 1, 0, dbop.ErrAlreadyCommitted},
		{"Then, Idempotent", then, true, false, 2, 1, nil},
		{"All, Idempotent", all, true, false, 2, 1, nil},
		{"Then, B first", func(a, b dbop.Op[int]) dbop.Op[int] { return then(b, a) }, false, true, 1, 1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := openSQLite(t, testdb.SQLiteFile(t))
			mustExec(t, db, "CREATE TABLE ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL)")
			fails := 1
			write := func(k string) dbop.Op[int] {
				return sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
					if _, err := tx.ExecContext(ctx, "INSERT INTO ledger (k) VALUES (?)", k); err != nil {
						return 0, err
					}
					if k == "B" && fails > 0 {
						fails--
						return 0, snapshot
					}
					return 1, nil
				})
			}
			opts := []dbop.RetryOption{dbop.MaxAttempts(3)}
			if c.idempotent {
				opts = append(opts, dbop.Idempotent())
			}
			_, err := c.group(write("A"), write("B")).With(dbop.WithRetry(dbop.Constant(0), opts...)).Run(t.Context())
			switch {
			case c.wantErr == nil && err != nil:
				t.Errorf("Run: %v, want success", err)
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Errorf("Run: %v, want an error matching %v", err, c.wantErr)
			case c.wantErr != nil && !errors.Is(err, snapshot):
				t.Errorf("Run: %v, want it to reach B's error", err)
			}
			if a, b := scalar[int](t, db, "SELECT count(*) FROM ledger WHERE k = 'A'"), scalar[int](t, db, "SELECT count(*) FROM ledger WHERE k = 'B'"); a != c.wantA || b != c.wantB {
				t.Errorf("A applied %d times and B %d, want %d and %d", a, b, c.wantA, c.wantB)
			}
			t.Logf("Run: %v", err)
		})
	}
}
