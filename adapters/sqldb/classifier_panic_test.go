package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/testdb"
)

// Review A: a panic in the caller's classifier (sqldb.ClassifyBy, asked
// before the dialect's) while InTx classifies fn's error. The deferred
// rollback of scopes.InTx runs only when fn itself did not return, so the
// transaction is never ended: a server that recovers panics per request
// (net/http does) keeps the connection checked out, with the
// transaction's locks, for ever. On a pool of one connection the next
// transaction cannot begin.
func TestClassifierPanicDoesNotLeakTheConnection(t *testing.T) {
	db := openSQLite(t, testdb.SQLiteFile(t))
	db.SetMaxOpenConns(1)
	mustExec(t, db, "CREATE TABLE review_a (id INTEGER PRIMARY KEY)")

	buggy := sqldb.ClassifyBy(func(err error) dbop.Verdict {
		if strings.Contains(err.Error(), "stale") {
			panic("classifier bug") // a bug in the caller's classifier
		}
		return dbop.Unclassified
	})
	op := sqldb.InTx(db, sqldb.SQLite, func(ctx context.Context, tx *sql.Tx) (int, error) {
		if _, err := tx.ExecContext(ctx, "INSERT INTO review_a VALUES (1)"); err != nil {
			return 0, err
		}
		return 0, errors.New("stale version")
	}, buggy)

	func() { // as net/http does for a handler
		defer func() {
			if p := recover(); p != nil {
				t.Logf("recovered: %v", p)
			}
		}()
		_, _ = op.Run(t.Context())
	}()

	t.Logf("pool stats after the recovered panic: %+v", db.Stats())
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM review_a").Scan(&n); err != nil {
		t.Errorf("the next statement on the pool: %v (InUse %d): the transaction whose classifier panicked was never rolled back", err, db.Stats().InUse)
	}
}
