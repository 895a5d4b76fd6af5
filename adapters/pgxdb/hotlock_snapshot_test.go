package pgxdb_test

import (
	"context"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/serverlimit"
	"github.com/jackc/pgx/v5"
)

// A deadline on the attempt's context does not fix a REPEATABLE READ or
// SERIALIZABLE transaction's snapshot before the wait for the lock table's
// LOCK. The limits derived from the deadline are set with a SELECT
// (docs/backends.md §1.18), which takes the snapshot: sent before the
// LOCK, it made the waiter's UPDATE of the row the holder wrote fail with
// 40001 the moment the holder committed. They follow the LOCK, in its
// round trip: the BEGIN's on pgx's own handles (still one round trip), the
// LOCK's own on any other Beginner. The attempt commits on top of the
// holder's write, once, with or without a deadline.
func TestHotSpotLockWaitsInPlaceUnderADeadline(t *testing.T) {
	inPool := inSchema(t, "pgxdb_hotlock_snapshot", true)
	admin := newPool(t, 2, inPool)
	createTable(t, admin, "pgxdb_hotlock_snapshot", "id int PRIMARY KEY, v int NOT NULL", "INSERT INTO pgxdb_hotlock_snapshot VALUES (1, 0)")
	log := &sqlLog{}
	pool := newPool(t, 2, inPool, traced(log))
	const update = "UPDATE pgxdb_hotlock_snapshot SET v = v + 1 WHERE id = 1"
	for _, c := range []struct {
		name string
		db   pgxdb.Beginner
		// want is the attempt's statements, the limits' SELECT written
		// <limits>; "" where there are none (no deadline).
		want func(begin, lock, limits string) []string
	}{
		{"pool", pool, func(begin, lock, limits string) []string {
			return []string{serverlimit.Join(begin, lock, limits), update, "commit"}
		}},
		{"beginner", countBegins{pool, new(int)}, func(begin, lock, limits string) []string {
			return []string{begin, serverlimit.Join(lock, limits), update, "commit"}
		}},
	} {
		for _, deadline := range []bool{false, true} {
			for _, iso := range []pgx.TxIsoLevel{pgx.RepeatableRead, pgx.Serializable} {
				name := c.name + "/" + string(iso) + map[bool]string{false: "/no deadline", true: "/deadline 30s"}[deadline]
				t.Run(name, func(t *testing.T) {
					key := rand.Int64()
					lock := "LOCK TABLE " + hotlock.PostgresTable(key) + " IN EXCLUSIVE MODE"
					before := queryInt(t, admin, "SELECT v FROM pgxdb_hotlock_snapshot WHERE id = 1")
					holder, err := admin.Begin(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					defer holder.Rollback(context.Background())
					exec(t, holder, lock)
					exec(t, holder, update)

					ctx := hotlock.With(t.Context(), &hotlock.Request{Key: key})
					if deadline {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
						defer cancel()
					}
					log.Reset()
					done := make(chan error, 1)
					go func() {
						_, err := pgxdb.Do(c.db, func(ctx context.Context, tx pgx.Tx) error {
							_, err := tx.Exec(ctx, update)
							return err
						}, pgxdb.Isolation(iso)).Run(ctx)
						done <- err
					}()
					waitForLockWaiter(t, admin, key, true)
					time.Sleep(20 * time.Millisecond)
					if err := holder.Commit(t.Context()); err != nil {
						t.Fatal(err)
					}
					if err := <-done; err != nil {
						t.Fatalf("the attempt that waited for the lock in place: %v (SQLSTATE %s)", err, pgCode(err))
					}
					if got, want := queryInt(t, admin, "SELECT v FROM pgxdb_hotlock_snapshot WHERE id = 1"), before+2; got != want {
						t.Errorf("v = %d, want %d: the holder's write and the attempt's, each once", got, want)
					}
					limits := ""
					if deadline {
						limits = "<limits>"
					}
					checkLog(t, c.want("begin isolation level "+string(iso), lock, limits), withLimits(log.Log()))
				})
			}
		}
	}
}

// The SET LOCAL statements of the limits given take no snapshot and stay
// before the LOCK, where they bound its wait; the SELECT of the limits
// derived from the deadline, for the parameters not given, follows it.
func TestHotSpotLockBeforeTheDerivedLimits(t *testing.T) {
	inPool := inSchema(t, "pgxdb_hotlock_snapshot_given", true)
	log := &sqlLog{}
	pool := newPool(t, 2, inPool, traced(log))
	key := rand.Int64()
	lock := "LOCK TABLE " + hotlock.PostgresTable(key) + " IN EXCLUSIVE MODE"
	ctx, cancel := context.WithTimeout(hotlock.With(t.Context(), &hotlock.Request{Key: key}), 30*time.Second)
	defer cancel()
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error { return nil },
		pgxdb.Isolation(pgx.Serializable), pgxdb.LockTimeout(10*time.Second)).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{"begin isolation level serializable; SET LOCAL lock_timeout = 10000; " + lock + "; <limits>", "commit"}, withLimits(log.Log()))
	if got := log.Log()[0]; !regexp.MustCompile(`; SELECT set_config\('statement_timeout', [^;]*$`).MatchString(got) {
		t.Errorf("the BEGIN round trip %q does not end with the derived statement_timeout's SELECT", got)
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
