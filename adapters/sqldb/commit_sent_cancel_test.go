package sqldb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/scopes"
)

// waitDB is a database/sql driver whose COMMIT behaves as pgx's
// database/sql driver does when the context given to BeginTx ends while it
// waits for COMMIT's answer: the statement is on the wire, and pgx returns
// a bare context.Canceled (pgconn normalizeTimeoutError, docs/backends.md
// §2.6), the server having committed or not.
type waitDB struct{ sent atomic.Int32 }

func (d *waitDB) Connect(context.Context) (driver.Conn, error) { return waitConn{d}, nil }
func (d *waitDB) Driver() driver.Driver                        { return fakeDriver{} }

type waitConn struct{ d *waitDB }

func (waitConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("wait: no prepare") }
func (waitConn) Close() error                        { return nil }
func (waitConn) Begin() (driver.Tx, error)           { return nil, errors.New("wait: use BeginTx") }

func (c waitConn) BeginTx(ctx context.Context, _ driver.TxOptions) (driver.Tx, error) {
	return waitTx{c.d, ctx}, nil
}

type waitTx struct {
	d   *waitDB
	ctx context.Context // the context given to BeginTx, which pgx's driver commits with
}

func (t waitTx) Commit() error {
	t.d.sent.Add(1) // COMMIT is sent; its answer is awaited
	select {
	case <-t.ctx.Done():
		return context.Canceled
	case <-time.After(5 * time.Second):
		return errors.New("wait: the COMMIT's context never ended")
	}
}

func (waitTx) Rollback() error { return nil }

// TestCommitSentAfterItsContextEndedIsAmbiguous: when the context InTx
// commits with (bounded by RollbackTimeout) has ended before Commit is
// called, database/sql's Commit still sends COMMIT unless its check of the
// transaction's context sees it done, and that context is cancelled only by
// a context.AfterFunc, in a goroutine of its own. A COMMIT sent so and cut
// by that cancel returns context.Canceled (pgx's driver), which is no proof
// that nothing was sent: it must be judged ambiguous, not "not sent" and
// then NotRetryable. Run many times: the race is the scheduler's.
func TestCommitSentAfterItsContextEndedIsAmbiguous(t *testing.T) {
	d := &waitDB{}
	db := sql.OpenDB(d)
	t.Cleanup(func() { db.Close() })

	const runs = 200
	sentRuns := 0
	for i := range runs {
		before := d.sent.Load()
		op := sqldb.Do(db, sqldb.Postgres, func(context.Context, *sql.Tx) error { return nil },
			sqldb.RollbackTimeout(time.Nanosecond))
		_, err := op.Run(context.Background())
		if err == nil {
			t.Fatalf("run %d: Do succeeded, though its COMMIT could not", i)
		}
		if d.sent.Load() == before {
			// COMMIT never reached the driver: not committed, not ambiguous.
			if errors.Is(err, scopes.ErrAmbiguousCommit) {
				t.Errorf("run %d: a COMMIT never sent was judged ambiguous: %v", i, err)
			}
			continue
		}
		sentRuns++
		if !errors.Is(err, scopes.ErrAmbiguousCommit) || dbop.VerdictOf(err) != dbop.Ambiguous {
			t.Fatalf("run %d: COMMIT reached the driver and was cut by the context, verdict %v, want Ambiguous: %v",
				i, dbop.VerdictOf(err), err)
		}
	}
	t.Logf("%d of %d runs sent COMMIT", sentRuns, runs)
}
