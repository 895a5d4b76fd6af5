package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// proxied starts a fault proxy in front of the test database and returns it
// with a pool whose connections go through it.
func proxied(t *testing.T) (*faultproxy.Proxy, *pgxpool.Pool) {
	t.Helper()
	direct := newPool(t, 1)
	cc := direct.Config().ConnConfig
	if cc.Host == "" || cc.Host[0] == '/' {
		t.Fatalf("the fault proxy needs a TCP address; the connection string names %q", cc.Host)
	}
	p := faultproxy.Start(t, net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))))
	port, err := strconv.ParseUint(p.Port(), 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	pool := newPool(t, 2, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.Host = p.Host()
		cfg.ConnConfig.Port = uint16(port)
		cfg.ConnConfig.Fallbacks = nil
		cfg.ConnConfig.TLSConfig = nil // the proxy must see the statements
	})
	return p, pool
}

// The connection is cut after COMMIT reached the server and before its
// answer reached the client: the server committed, the client cannot know.
// A non-idempotent operation gets an ambiguous error and is not retried; an
// idempotent one is retried. Either way the row exists exactly once.
//
// pgx sends COMMIT as "commit", so that is what the proxy watches for.
func TestCutDuringCommitIsAmbiguous(t *testing.T) {
	t.Run("not retried", func(t *testing.T) {
		p, pool := proxied(t)
		admin := newPool(t, 1)
		createTable(t, admin, "pgxdb_ambiguous", "id int PRIMARY KEY")

		var runs int
		var backend uint32
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			runs++
			backend = pid(tx)
			_, err := tx.Exec(ctx, "INSERT INTO pgxdb_ambiguous VALUES (1)")
			p.CutAfter([]byte("commit"))
			return 1, err
		})
		_, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context())

		if !errors.Is(err, scopes.ErrAmbiguousCommit) {
			t.Errorf("error %v does not match scopes.ErrAmbiguousCommit", err)
		}
		if v := dbop.VerdictOf(err); v != dbop.Ambiguous {
			t.Errorf("verdict = %v, want ambiguous", v)
		}
		var ace *scopes.AmbiguousCommitError
		if !errors.As(err, &ace) || ace.Err == nil {
			t.Fatalf("error %v is not an *scopes.AmbiguousCommitError with the COMMIT error", err)
		}
		// pgx reports the lost answer as "conn closed" (see
		// TestPgxReportsLostAnswerAsConnClosed); the driver's error is there.
		if !errors.Is(err, pgconn.ErrConnClosed) || !errors.Is(ace.Err, pgconn.ErrConnClosed) {
			t.Errorf("error %v does not reach pgconn.ErrConnClosed", err)
		}
		if _, ok := attempts(err); ok || runs != 1 {
			t.Errorf("fn ran %d times, want 1: an ambiguous commit of non-idempotent work is not retried", runs)
		}
		if p.Cuts() != 1 {
			t.Errorf("the proxy cut %d connections, want 1", p.Cuts())
		}
		// Once the backend is gone it has handled everything it was sent.
		waitForBackendGone(t, admin, backend)
		if got := queryInt(t, admin, "SELECT count(*) FROM pgxdb_ambiguous"); got != 1 {
			t.Errorf("%d rows, want 1: the server did commit", got)
		}
	})

	t.Run("idempotent is retried", func(t *testing.T) {
		p, pool := proxied(t)
		admin := newPool(t, 1)
		createTable(t, admin, "pgxdb_ambiguous_idempotent", "id int PRIMARY KEY")

		var runs int
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			runs++
			tag, err := tx.Exec(ctx, "INSERT INTO pgxdb_ambiguous_idempotent VALUES (1) ON CONFLICT (id) DO NOTHING")
			if runs == 1 {
				p.CutAfter([]byte("commit"))
			}
			return int(tag.RowsAffected()), err
		})
		var rec retries
		inserted, err := op.With(dbop.WithRetry(retryAtOnce, dbop.Idempotent(), dbop.OnRetry(rec.record))).Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if runs != 2 || len(rec.events) != 1 || rec.events[0].Verdict != dbop.Ambiguous {
			t.Errorf("fn ran %d times after retries %+v, want 2 after one ambiguous commit", runs, rec.events)
		}
		if inserted != 0 {
			t.Errorf("the retry inserted %d rows, want 0: the first commit had landed", inserted)
		}
		if got := queryInt(t, admin, "SELECT count(*) FROM pgxdb_ambiguous_idempotent"); got != 1 {
			t.Errorf("%d rows, want 1", got)
		}
	})

	// Under CockroachRestart, RELEASE SAVEPOINT cockroach_restart is
	// CockroachDB's commit point, so a cut there is ambiguous too. On
	// PostgreSQL it commits nothing — the transaction dies with the
	// connection — which shows the reading is the safe one, not the exact
	// one, there.
	t.Run("RELEASE of cockroach_restart", func(t *testing.T) {
		p, pool := proxied(t)
		admin := newPool(t, 1)
		createTable(t, admin, "pgxdb_ambiguous_release", "id int PRIMARY KEY")

		var runs int
		var backend uint32
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			runs++
			backend = pid(tx)
			_, err := tx.Exec(ctx, "INSERT INTO pgxdb_ambiguous_release VALUES (1)")
			p.CutAfter([]byte("RELEASE SAVEPOINT cockroach_restart"))
			return 1, err
		}, pgxdb.CockroachRestart(dbop.MaxAttempts(4)))
		_, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
		if !errors.Is(err, scopes.ErrAmbiguousCommit) || dbop.VerdictOf(err) != dbop.Ambiguous {
			t.Errorf("error %v (verdict %v) is not an ambiguous commit", err, dbop.VerdictOf(err))
		}
		if runs != 1 {
			t.Errorf("fn ran %d times, want 1", runs)
		}
		waitForBackendGone(t, admin, backend)
		if got := queryInt(t, admin, "SELECT count(*) FROM pgxdb_ambiguous_release"); got != 0 {
			t.Errorf("%d rows, want 0: on PostgreSQL RELEASE does not commit", got)
		}
	})
}

// pgx v5.12.0 reports a connection lost after a statement was sent with the
// simple protocol (any Exec without arguments: COMMIT, ROLLBACK, SAVEPOINT,
// SET LOCAL, or an autocommit INSERT) as "conn closed", an error whose
// SafeToRetry is true. pgconn documents SafeToRetry as "nothing was sent"
// (docs/backends.md §2.2): here the server received the statement and
// applied it (§2.4). The extended protocol reports the read error itself.
// InTx's judgement of COMMIT errors is built around this; if a pgx upgrade
// makes this test fail, pgx has changed, and its ErrConnClosed rule can be
// revisited.
func TestPgxReportsLostAnswerAsConnClosed(t *testing.T) {
	tests := []struct {
		name       string
		args       []any
		wantSafe   bool
		wantClosed bool
	}{
		{name: "simple protocol", wantSafe: true, wantClosed: true},
		{name: "extended protocol", args: []any{pgx.QueryExecModeExec, 1}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, pool := proxied(t)
			admin := newPool(t, 1)
			table := fmt.Sprintf("pgxdb_lost_answer_%d", i)
			createTable(t, admin, table, "id int PRIMARY KEY")

			conn, err := pool.Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Release()
			backend := conn.Conn().PgConn().PID()
			p.CutAfter([]byte("INSERT"))
			sql := "INSERT INTO " + table + " VALUES (1)"
			if tt.args != nil {
				sql = "INSERT INTO " + table + " VALUES ($1)"
			}
			_, err = conn.Exec(t.Context(), sql, tt.args...)
			if err == nil {
				t.Fatal("the cut connection reported no error")
			}
			if got := pgconn.SafeToRetry(err); got != tt.wantSafe {
				t.Errorf("SafeToRetry(%v) = %t, want %t", err, got, tt.wantSafe)
			}
			if got := errors.Is(err, pgconn.ErrConnClosed); got != tt.wantClosed {
				t.Errorf("errors.Is(%v, ErrConnClosed) = %t, want %t", err, got, tt.wantClosed)
			}
			waitForBackendGone(t, admin, backend)
			if got := queryInt(t, admin, "SELECT count(*) FROM "+table); got != 1 {
				t.Errorf("%d rows, want 1: the server received and applied the INSERT", got)
			}
		})
	}
}
