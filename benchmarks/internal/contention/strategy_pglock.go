package contention

import (
	"context"
	"fmt"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/jackc/pgx/v5"
)

// pgLockKey carries, in an attempt's context, the statement that pgDB.Attempt
// sends in the BEGIN round trip after BEGIN (PGLock).
type pgLockKey struct{}

// pgLockAttempts is the most attempts PGLock makes of one transfer.
const pgLockAttempts = 50

// PGLock takes turns through the database by hand: every attempt of every
// worker, in every process, locks one of dbop.HotSpot's lock tables
// (pgxdb.CreateHotSpotLocks) IN EXCLUSIVE MODE in its BEGIN round trip, as
// pgxdb does for a HotSpot's attempts, and waits for it in place; a
// retryable error is retried at once, up to 50 attempts (Immediate). It is not a retry
// strategy but a yardstick: what ordering every transaction of a fleet
// through a lock of the database costs beside the single worker, with
// nothing deciding admission in the processes. PostgreSQL only, with the
// lock tables.
func PGLock(cfg Config) (Strategy, error) {
	if cfg.Backend.Kind != Postgres {
		return Strategy{}, fmt.Errorf("strategy pglock: PostgreSQL only (LOCK TABLE on dbop.HotSpot's lock table), not %s", cfg.Backend.Kind)
	}
	if cfg.NoLockTables {
		return Strategy{}, fmt.Errorf("strategy pglock: locks dbop.HotSpot's lock table, which -no-lock-tables drops")
	}
	lock := hotlock.PostgresLock(0)
	retry := Immediate(pgLockAttempts).Transfer
	return Strategy{Name: "pglock", Transfer: func(ctx context.Context, db DB, fn TxFunc) error {
		return retry(context.WithValue(ctx, pgLockKey{}, lock), db, fn)
	}}, nil
}

// pgLockBegin returns the BEGIN round trip of a PGLock attempt: BEGIN at
// iso (none named if empty), then lock.
func pgLockBegin(iso pgx.TxIsoLevel, lock string) string {
	begin := "BEGIN"
	if iso != "" {
		begin += " ISOLATION LEVEL " + string(iso)
	}
	return begin + "; " + lock
}
