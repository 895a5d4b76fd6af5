package gormdb_test

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// A REPEATABLE READ or SERIALIZABLE transaction's snapshot is not fixed
// before the wait for the lock table's LOCK on PostgreSQL. The limits
// derived from a deadline are set with a SELECT (set_config,
// docs/backends.md §1.18), and a SELECT takes the snapshot: run before the
// LOCK, it made the waiter's UPDATE of the row the holder wrote fail with
// 40001 the moment the holder committed. It follows the LOCK, in the
// LOCK's round trip, so the attempt has no more round trips than before;
// LockTimeout is SET LOCAL before the LOCK, which takes no snapshot. The
// attempt commits on top of the holder's write, once, with or without a
// deadline, with or without LockTimeout.
func TestHotSpotLockWaitsInPlaceUnderADeadline(t *testing.T) {
	const schema = "gormdb_hotlock_snapshot"
	admin := postgresInSchema(t, schema, true)
	createTable(t, admin, "gormdb_hotlock_snapshot", "id int PRIMARY KEY, v int NOT NULL")
	exec(t, admin, "INSERT INTO gormdb_hotlock_snapshot VALUES (1, 0)")
	log := &pgcLog{}
	cc, err := pgx.ParseConfig(testdb.Postgres(t))
	if err != nil {
		t.Fatalf("parsing %s: %v", testdb.PostgresEnv, err)
	}
	cc.RuntimeParams["search_path"] = schema
	cc.Tracer = log
	db := openPostgres(t, cc, nil)
	const update = "UPDATE gormdb_hotlock_snapshot SET v = v + 1 WHERE id = 1"
	for _, given := range []bool{false, true} {
		for _, deadline := range []bool{false, true} {
			for _, iso := range []sql.IsolationLevel{sql.LevelRepeatableRead, sql.LevelSerializable} {
				name := iso.String() + map[bool]string{false: "/no deadline", true: "/deadline 30s"}[deadline] +
					map[bool]string{false: "", true: "/lock timeout given"}[given]
				t.Run(name, func(t *testing.T) {
					key := rand.Int64()
					lock := "LOCK TABLE " + hotlock.PostgresTable(key) + " IN EXCLUSIVE MODE"
					var before int
					if err := admin.Raw("SELECT v FROM gormdb_hotlock_snapshot WHERE id = 1").Scan(&before).Error; err != nil {
						t.Fatal(err)
					}
					holder := admin.Begin()
					if holder.Error != nil {
						t.Fatal(holder.Error)
					}
					defer holder.Rollback()
					exec(t, holder, lock)
					exec(t, holder, update)

					ctx := hotlock.With(t.Context(), &hotlock.Request{Key: key})
					if deadline {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
						defer cancel()
					}
					opts := []gormdb.TxOption{gormdb.Isolation(iso)}
					if given {
						opts = append(opts, gormdb.LockTimeout(10*time.Second))
					}
					log.reset()
					done := make(chan error, 1)
					go func() {
						_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
							return tx.Exec(update).Error
						}, opts...).Run(ctx)
						done <- err
					}()
					waitUntil(t, "the attempt waits for the lock", func() bool {
						var n int
						err := admin.Raw("SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND NOT granted AND relation = ?::regclass", hotlock.PostgresTable(key)).Scan(&n).Error
						return err == nil && n > 0
					})
					time.Sleep(20 * time.Millisecond)
					if err := holder.Commit().Error; err != nil {
						t.Fatal(err)
					}
					if err := <-done; err != nil {
						t.Fatalf("the attempt that waited for the lock in place: %v (SQLSTATE %s)", err, pgCode(err))
					}
					var v int
					if err := admin.Raw("SELECT v FROM gormdb_hotlock_snapshot WHERE id = 1").Scan(&v).Error; err != nil {
						t.Fatal(err)
					}
					if v != before+2 {
						t.Errorf("v = %d, want %d: the holder's write and the attempt's, each once", v, before+2)
					}
					// LockTimeout given is SET LOCAL before the LOCK,
					// where it bounds the wait; the SELECT of the
					// limits derived from the deadline follows it.
					first := lock
					if given {
						first = "SET LOCAL lock_timeout = 10000; " + first
					}
					if deadline {
						first += "; <limits>"
					}
					want := []string{"begin isolation level " + strings.ToLower(iso.String()), first, update, "commit"}
					if diff := cmp.Diff(want, withLimits(log.log())); diff != "" {
						t.Errorf("the attempt's statements (-want +got):\n%s", diff)
					}
				})
			}
		}
	}
}

// limitsSQL matches the SELECT that sets an attempt's limits
// (serverlimit.PostgresSelect), whose values change with the time left on
// a deadline: it holds no semicolon.
var limitsSQL = regexp.MustCompile(`SELECT set_config\([^;]*`)

// withLimits returns stmts with the limits' SELECT written <limits>.
func withLimits(stmts []string) []string {
	out := make([]string, len(stmts))
	for i, s := range stmts {
		out[i] = limitsSQL.ReplaceAllString(s, "<limits>")
	}
	return out
}

// waitUntil polls cond every few milliseconds until it holds, failing t
// after ten seconds: for pg_locks, which says when another backend waits.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
