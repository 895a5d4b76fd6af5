package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/jackc/pgx/v5/pgconn"
)

// A per-attempt deadline shorter than a slow statement: InTx derived a
// server-side limit from the time left (MariaDB's max_statement_time, on
// the pinned connection; PostgreSQL's SET LOCAL statement_timeout), so the
// server ends the statement (1969; 57014 statement timeout) before the
// context expires, the pool's one connection survives it (same connection
// id, no connection opened or closed), the session keeps its own settings,
// and the retry commits.
func TestDeadlineBecomesServerTimeout(t *testing.T) {
	type backend struct {
		name    string
		open    func(t *testing.T) *sql.DB
		d       sqldb.Dialect
		sleep   string
		connID  string
		setting string
		check   func(err error) bool
	}
	backends := []backend{
		{
			name: "mariadb", open: func(t *testing.T) *sql.DB { return openMariaDB(t) }, d: mysqldb.MariaDB,
			sleep: "SELECT SLEEP(10)", connID: "SELECT CONNECTION_ID()", setting: "SELECT @@SESSION.max_statement_time",
			check: func(err error) bool { return mysqlNumber(err) == 1969 },
		},
		{
			name: "postgres", open: func(t *testing.T) *sql.DB { return openPostgres(t) }, d: sqldb.Postgres,
			sleep: "SELECT pg_sleep(10)", connID: "SELECT pg_backend_pid()", setting: "SHOW statement_timeout",
			check: func(err error) bool {
				pe, ok := errors.AsType[*pgconn.PgError](err)
				return ok && pe.Code == "57014" && strings.Contains(pe.Message, "statement timeout")
			},
		},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			db := be.open(t)
			db.SetMaxOpenConns(1)
			db.SetMaxIdleConns(1)
			tbl := table(t, db, fmt.Sprintf("sqldb_deadline_%d", os.Getpid()), "(id INT PRIMARY KEY)")
			id0 := scalar[int64](t, db, be.connID)
			setting0 := scalar[string](t, db, be.setting)

			var runs int
			var firstTook time.Duration
			var ids []int64
			op := sqldb.InTx(db, be.d, func(ctx context.Context, tx *sql.Tx) (int, error) {
				runs++
				ids = append(ids, scalar[int64](t, tx, be.connID))
				if runs == 1 {
					start := time.Now()
					var x any
					err := tx.QueryRowContext(ctx, be.sleep).Scan(&x)
					firstTook = time.Since(start)
					return 0, err
				}
				_, err := tx.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (1)")
				return 1, err
			})
			var retried recorder
			_, err := op.With(
				dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), retried.option()),
				dbop.WithTimeout(time.Second), // each attempt: the server's limit is 950ms, a 50ms margin (300ms would leave 30ms, which a loaded CI machine overran)
			).Run(t.Context())
			if err != nil {
				t.Fatalf("Run = %v; want the retry to commit", err)
			}
			errs := retried.all()
			if len(errs) != 1 || !be.check(errs[0]) {
				t.Fatalf("retried %v, want the server's statement timeout", errs)
			}
			// The server's error is the proof, with the connection checks
			// below: had the context ended the statement, the driver would
			// have closed the connection. On a loaded machine the server's
			// answer can reach the client a little after the deadline;
			// WithTimeout then labels it a timeout too, which is harmless
			// here and logged.
			if _, ok := errors.AsType[*dbop.TimeoutError](errs[0]); ok {
				t.Logf("the server's answer arrived after the deadline (%v), the statement ran %v", errs[0], firstTook)
			}
			if firstTook < 900*time.Millisecond {
				t.Errorf("the slow statement ran %v, want at least the server's limit (950ms less scheduling noise)", firstTook)
			}
			if len(ids) != 2 || ids[0] != id0 || ids[1] != id0 {
				t.Errorf("connections %v, want both attempts on the pool's one connection %d", ids, id0)
			}
			if st := db.Stats(); st.OpenConnections != 1 || st.MaxIdleClosed != 0 || st.MaxLifetimeClosed != 0 {
				t.Errorf("pool %+v, want the one connection open all along", st)
			}
			if id := scalar[int64](t, db, be.connID); id != id0 {
				t.Errorf("connection %d after the run, want %d", id, id0)
			}
			if s := scalar[string](t, db, be.setting); s != setting0 {
				t.Errorf("session setting after the run = %q, want %q as before", s, setting0)
			}
			if n := scalar[int](t, db, "SELECT COUNT(*) FROM "+tbl); n != 1 {
				t.Errorf("%d rows, want 1", n)
			}
		})
	}
}
