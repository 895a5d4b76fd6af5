package sqldb_test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// A deadline on the attempt's context does not fix a REPEATABLE READ or
// SERIALIZABLE transaction's snapshot before the wait for the lock table's
// LOCK on PostgreSQL. The limits derived from the deadline are set with a
// SELECT (docs/backends.md §1.18), which takes the snapshot: run before
// the LOCK, it made the waiter's UPDATE of the row the holder wrote fail
// with 40001 the moment the holder committed. It follows the LOCK, in the
// LOCK's round trip, so the attempt has no more round trips than before;
// the SET LOCAL statements of the limits given take no snapshot and stay
// before it. The attempt commits on top of the holder's write, once, with
// or without a deadline.
func TestHotSpotLockWaitsInPlaceUnderADeadline(t *testing.T) {
	const schema = "sqldb_hotlock_snapshot"
	admin := postgresInSchema(t, schema, true)
	table(t, admin, "sqldb_hotlock_snapshot", "(id int PRIMARY KEY, v int NOT NULL)")
	mustExec(t, admin, "INSERT INTO sqldb_hotlock_snapshot VALUES (1, 0)")
	log := &pgcLog{}
	cc, err := pgx.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cc.RuntimeParams["search_path"] = schema
	cc.Tracer = log
	db := stdlib.OpenDB(*cc)
	t.Cleanup(func() { db.Close() })
	const update = "UPDATE sqldb_hotlock_snapshot SET v = v + 1 WHERE id = 1"
	for _, given := range []bool{false, true} {
		for _, deadline := range []bool{false, true} {
			for _, iso := range []sql.IsolationLevel{sql.LevelDefault, sql.LevelReadCommitted, sql.LevelRepeatableRead, sql.LevelSerializable} {
				name := iso.String() + map[bool]string{false: "/no deadline", true: "/deadline 30s"}[deadline] +
					map[bool]string{false: "", true: "/lock timeout given"}[given]
				t.Run(name, func(t *testing.T) {
					key := rand.Int64()
					lock := "LOCK TABLE " + hotlock.PostgresTable(key) + " IN EXCLUSIVE MODE"
					before := scalar[int](t, admin, "SELECT v FROM sqldb_hotlock_snapshot WHERE id = 1")
					holder, err := admin.BeginTx(t.Context(), nil)
					if err != nil {
						t.Fatal(err)
					}
					defer holder.Rollback()
					mustExec(t, holder, lock)
					mustExec(t, holder, update)

					ctx := hotlock.With(t.Context(), &hotlock.Request{Key: key})
					if deadline {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
						defer cancel()
					}
					var opts []sqldb.TxOption
					if iso != sql.LevelDefault {
						opts = append(opts, sqldb.Isolation(iso))
					}
					if given {
						opts = append(opts, sqldb.LockTimeout(10*time.Second))
					}
					log.reset()
					done := make(chan error, 1)
					go func() {
						_, err := sqldb.InTx(db, sqldb.Postgres, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
							_, err := tx.ExecContext(ctx, update)
							return struct{}{}, err
						}, opts...).Run(ctx)
						done <- err
					}()
					eventually(t, "the attempt waits for the lock", func() bool {
						return scalar[int](t, admin, "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND NOT granted AND relation = $1::regclass", hotlock.PostgresTable(key)) > 0
					})
					time.Sleep(20 * time.Millisecond)
					if err := holder.Commit(); err != nil {
						t.Fatal(err)
					}
					if err := <-done; err != nil {
						t.Fatalf("the attempt that waited for the lock in place: %v (SQLSTATE %s)", err, pgCode(err))
					}
					if got, want := scalar[int](t, admin, "SELECT v FROM sqldb_hotlock_snapshot WHERE id = 1"), before+2; got != want {
						t.Errorf("v = %d, want %d: the holder's write and the attempt's, each once", got, want)
					}
					// Two round trips before the work, whatever the
					// level: BEGIN, then the lock's with the limits. The
					// SET LOCAL of the lock timeout given (the deadline's
					// derived limit where that is smaller) before the
					// LOCK; the derived limits' SELECT before it too, but
					// after it where the transaction keeps one snapshot.
					begin := "begin"
					if iso != sql.LevelDefault {
						begin += " isolation level " + strings.ToLower(iso.String())
					}
					var stmts []string
					if given {
						stmts = append(stmts, "SET LOCAL lock_timeout = 10000")
					}
					snapshot := iso == sql.LevelRepeatableRead || iso == sql.LevelSerializable
					if deadline && !snapshot {
						stmts = append(stmts, "<limits>")
					}
					stmts = append(stmts, lock)
					if deadline && snapshot {
						stmts = append(stmts, "<limits>")
					}
					want := []string{begin, strings.Join(stmts, "; "), update, "commit"}
					if diff := cmp.Diff(want, withLimits(log.log())); diff != "" {
						t.Errorf("the attempt's statements (-want +got):\n%s", diff)
					}
				})
			}
		}
	}
}

// limitsSQL matches the SELECT that sets the limits derived from a
// deadline (serverlimit.PostgresSelect), whose values change with the time
// left: it holds no semicolon.
var limitsSQL = regexp.MustCompile(`SELECT set_config\([^;]*`)

// withLimits returns stmts with the derived limits' SELECT written
// <limits>.
func withLimits(stmts []string) []string {
	out := make([]string, len(stmts))
	for i, s := range stmts {
		out[i] = limitsSQL.ReplaceAllString(s, "<limits>")
	}
	return out
}

// On MariaDB the limits derived from a deadline are session settings, set
// on the pinned connection before BEGIN, and the lock is a locking read,
// which takes no snapshot (docs/backends.md §3.13): a REPEATABLE READ or
// SERIALIZABLE attempt with a deadline waits for the lock row in place and
// commits on top of the holder's write, once.
func TestHotSpotLockWaitsInPlaceUnderADeadlineMariaDB(t *testing.T) {
	db := openMariaDB(t)
	if err := sqldb.CreateHotSpotLocks(t.Context(), db, mysqldb.MariaDB); err != nil {
		t.Fatal(err)
	}
	table(t, db, "sqldb_hotlock_snapshot", "(id int PRIMARY KEY, v int NOT NULL)")
	mustExec(t, db, "INSERT INTO sqldb_hotlock_snapshot VALUES (1, 0)")
	const update = "UPDATE sqldb_hotlock_snapshot SET v = v + 1 WHERE id = 1"
	for _, iso := range []sql.IsolationLevel{sql.LevelRepeatableRead, sql.LevelSerializable} {
		t.Run(iso.String(), func(t *testing.T) {
			key := rand.Int64()
			mustExec(t, db, "INSERT IGNORE INTO dbop_hotspot_locks (id) VALUES (?)", key)
			before := scalar[int](t, db, "SELECT v FROM sqldb_hotlock_snapshot WHERE id = 1")
			holder, err := db.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer holder.Rollback()
			mustExec(t, holder, "SELECT id FROM dbop_hotspot_locks WHERE id = ? FOR UPDATE", key)
			mustExec(t, holder, update)

			ctx, cancel := context.WithTimeout(hotlock.With(t.Context(), &hotlock.Request{Key: key}), 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (struct{}, error) {
					_, err := tx.ExecContext(ctx, update)
					return struct{}{}, err
				}, sqldb.Isolation(iso)).Run(ctx)
				done <- err
			}()
			// MariaDB's waiter is not listed by InnoDB at once (see
			// hotLockCase.waiting): the attempt asks for the lock well
			// within this.
			time.Sleep(300 * time.Millisecond)
			releaseTheWaiter(t, db, holder, done, "sqldb_hotlock_snapshot", before)
		})
	}
}
