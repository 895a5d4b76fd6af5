package pgxdb_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/dbop-go/dbop/internal/resolve"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/dbop-go/dbop/scopes"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// resolutions collects what scopes.OnCommitResolved reports.
type resolutions struct {
	mu  sync.Mutex
	got []scopes.ResolvedCommit
}

func (r *resolutions) record(_ context.Context, rc scopes.ResolvedCommit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rc)
}

func (r *resolutions) list() []scopes.Resolution {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []scopes.Resolution
	for _, rc := range r.got {
		out = append(out, rc.Resolution)
	}
	return out
}

// resolveTable returns a table name unique to this process and test.
func resolveTable(name string) string { return fmt.Sprintf("pgxdb_resolve_%s_%d", name, os.Getpid()) }

// The connection is cut around COMMIT, and ResolveCommit finds out what
// happened on a new connection, without Idempotent:
//
//   - cut after: the server committed and the answer was lost;
//     pg_xact_status says committed, and InTx returns fn's value.
//   - cut before: the server never received COMMIT and saw the client go;
//     aborted, and the retry runs the transaction again, once.
//   - partition before: the server never received COMMIT and was not told
//     the client had gone, so the old backend sits idle in its
//     transaction, holding its row lock; the resolver ends it
//     (pg_terminate_backend), sees aborted, and the retry — which needs
//     that row — commits.
//
// Either way the row is there exactly once.
func TestResolveCommitCutAroundCommit(t *testing.T) {
	tests := []struct {
		name     string
		arm      func(p *faultproxy.Proxy)
		want     scopes.Resolution
		wantRuns int
	}{
		{name: "cut after", arm: func(p *faultproxy.Proxy) { p.CutAfter([]byte("commit")) }, want: scopes.Committed, wantRuns: 1},
		{name: "cut before", arm: func(p *faultproxy.Proxy) { p.CutBefore([]byte("commit")) }, want: scopes.Aborted, wantRuns: 2},
		{name: "partition before", arm: func(p *faultproxy.Proxy) { p.PartitionBefore([]byte("commit")) }, want: scopes.Aborted, wantRuns: 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, pool := proxied(t)
			admin := newPool(t, 1)
			table := resolveTable(fmt.Sprint("cut", i))
			createTable(t, admin, table, "id int PRIMARY KEY, n int NOT NULL", "INSERT INTO "+table+" VALUES (1, 0)")

			var runs int
			var backends []uint32
			op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
				runs++
				backends = append(backends, pid(tx))
				_, err := tx.Exec(ctx, "UPDATE "+table+" SET n = n + 1 WHERE id = 1")
				if runs == 1 {
					tt.arm(p)
				}
				return 42, err
			}, pgxdb.ResolveCommit())
			var rec retries
			var res resolutions
			ctx := scopes.OnCommitResolved(t.Context(), res.record)
			got, err := op.With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record))).Run(ctx)
			if err != nil || got != 42 {
				t.Fatalf("Run = %d, %v; want 42, nil", got, err)
			}
			if runs != tt.wantRuns || p.Cuts() != 1 {
				t.Errorf("fn ran %d times after %d cuts, want %d after 1", runs, p.Cuts(), tt.wantRuns)
			}
			if r := res.list(); len(r) != 1 || r[0] != tt.want {
				t.Errorf("resolutions %v, want [%v]", r, tt.want)
			}
			if tt.want == scopes.Aborted {
				if len(rec.events) != 1 || !errors.Is(rec.events[0].Err, scopes.ErrCommitAborted) || rec.events[0].Verdict != dbop.RetryTransaction {
					t.Errorf("retried %+v, want one aborted commit, retry-transaction", rec.events)
				}
			}
			waitForBackendGone(t, admin, backends[0])
			if n := queryInt(t, admin, "SELECT n FROM "+table+" WHERE id = 1"); n != 1 {
				t.Errorf("n = %d, want 1: the transaction applied exactly once", n)
			}
		})
	}
}

// A transaction that wrote no row is given an id before COMMIT (a NOTIFY
// would act at COMMIT without one) and its lost answer resolved like any
// other's; a READ ONLY one does not read the id: its lost answer changes
// nothing, and InTx returns fn's value without asking anyone — except where
// it may be SERIALIZABLE, where a read-only transaction can still fail at
// COMMIT: it is retried instead.
func TestResolveCommitNothingWritten(t *testing.T) {
	tests := []struct {
		name     string
		opts     []pgxdb.TxOption
		want     scopes.Resolution
		wantRuns int
		wantRead bool // the id is read before COMMIT
	}{
		// A read-write transaction gets an id before COMMIT even when it
		// wrote nothing (a NOTIFY would act at COMMIT), and is asked.
		{name: "read-write", want: scopes.Committed, wantRuns: 1, wantRead: true},
		{name: "serializable", opts: []pgxdb.TxOption{pgxdb.Isolation(pgx.Serializable)}, want: scopes.Committed, wantRuns: 1, wantRead: true},
		// A READ ONLY one reads none: nothing was written, and fn's value
		// stands — unless it may be SERIALIZABLE (isolation not given:
		// the server's default may be), where even a read can fail at
		// COMMIT, and it is run again.
		{name: "read only, read committed", opts: []pgxdb.TxOption{pgxdb.ReadOnly(), pgxdb.Isolation(pgx.ReadCommitted)}, want: scopes.NotWritten, wantRuns: 1},
		{name: "read only, isolation not given", opts: []pgxdb.TxOption{pgxdb.ReadOnly()}, want: scopes.Aborted, wantRuns: 2},
		{name: "read only, serializable", opts: []pgxdb.TxOption{pgxdb.ReadOnly(), pgxdb.Isolation(pgx.Serializable)}, want: scopes.Aborted, wantRuns: 2},
		// The server reads the level in any case: so does the resolver.
		{name: "read only, SERIALIZABLE", opts: []pgxdb.TxOption{pgxdb.ReadOnly(), pgxdb.Isolation("SERIALIZABLE")}, want: scopes.Aborted, wantRuns: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log sqlLog
			p, pool := proxied(t)
			pool.Config() // the pool is traced below through a second pool on the same proxy
			traced := newPool(t, 1, func(cfg *pgxpool.Config) {
				*cfg.ConnConfig = *pool.Config().ConnConfig.Copy()
				cfg.ConnConfig.Tracer = &log
			})
			var runs int
			op := pgxdb.InTx(traced, func(ctx context.Context, tx pgx.Tx) (int, error) {
				runs++
				var n int
				err := tx.QueryRow(ctx, "SELECT 7").Scan(&n)
				if runs == 1 {
					p.CutAfter([]byte("commit"))
				}
				return n, err
			}, append(tt.opts, pgxdb.ResolveCommit())...)
			var res resolutions
			got, err := op.With(dbop.WithRetry(retryAtOnce)).Run(scopes.OnCommitResolved(t.Context(), res.record))
			if err != nil || got != 7 || runs != tt.wantRuns {
				t.Fatalf("Run = %d, %v after %d runs; want 7, nil after %d", got, err, runs, tt.wantRuns)
			}
			if r := res.list(); len(r) != 1 || r[0] != tt.want {
				t.Errorf("resolutions %v, want [%v]", r, tt.want)
			}
			read := false
			for _, s := range log.Log() {
				read = read || strings.Contains(s, "pg_current_xact_id")
			}
			if read != tt.wantRead {
				t.Errorf("the id was read: %t, want %t; statements: %q", read, tt.wantRead, log.Log())
			}
		})
	}
}

// The cost: one statement just before COMMIT, in a round trip of its own,
// and nothing else while no answer is lost.
func TestResolveCommitReadsTheIDBeforeCommit(t *testing.T) {
	var log sqlLog
	pool := newPool(t, 1, traced(&log))
	admin := newPool(t, 1)
	table := resolveTable("cost")
	createTable(t, admin, table, "id int PRIMARY KEY")
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		_, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES (1)")
		return 1, err
	}, pgxdb.ResolveCommit())
	if _, err := op.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLog(t, []string{
		"begin",
		"INSERT INTO " + table + " VALUES (1)",
		resolve.PGTxSQL,
		"commit",
	}, log.Log())
}

// When the server cannot be reached after the cut, the outcome stays
// unknown: the ambiguous error of old, with the reason, and no retry.
func TestResolveCommitUnreachableStaysAmbiguous(t *testing.T) {
	p, _ := proxied(t)
	admin := newPool(t, 1)
	table := resolveTable("unreachable")
	createTable(t, admin, table, "id int PRIMARY KEY")
	var down atomic.Bool
	pool := newPool(t, 1, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.Host, cfg.ConnConfig.Port = p.Host(), uint16(atoi(t, p.Port()))
		cfg.ConnConfig.Fallbacks, cfg.ConnConfig.TLSConfig = nil, nil
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if down.Load() {
				return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	var runs int
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		runs++
		_, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES (1)")
		p.CutAfter([]byte("commit"))
		down.Store(true)
		return 1, err
	}, pgxdb.ResolveCommit())
	_, err := op.With(dbop.WithRetry(retryAtOnce)).Run(t.Context())
	var ace *scopes.AmbiguousCommitError
	if !errors.As(err, &ace) || ace.Resolve == nil || dbop.VerdictOf(err) != dbop.Ambiguous {
		t.Fatalf("error %v (verdict %v): want an ambiguous commit whose resolution failed", err, dbop.VerdictOf(err))
	}
	if !errors.Is(ace.Resolve, syscall.ECONNREFUSED) {
		t.Errorf("the resolution's reason %v does not reach the dial error", ace.Resolve)
	}
	if runs != 1 {
		t.Errorf("fn ran %d times, want 1", runs)
	}
}

// ResolveCommit needs a handle whose configuration it can copy, and does
// not resolve CockroachDB's commit point.
func TestResolveCommitPanics(t *testing.T) {
	fn := func(context.Context, pgx.Tx) (int, error) { return 0, nil }
	tests := []struct {
		name string
		db   pgxdb.Beginner
		opts []pgxdb.TxOption
		want string
	}{
		{name: "other Beginner", db: &fakeDB{}, opts: []pgxdb.TxOption{pgxdb.ResolveCommit()},
			want: "pgxdb: InTx: ResolveCommit needs a *pgxpool.Pool, *pgxpool.Conn or *pgx.Conn"},
		{name: "CockroachRestart", db: &fakeDB{}, opts: []pgxdb.TxOption{pgxdb.ResolveCommit(), pgxdb.CockroachRestart()},
			want: "pgxdb: InTx: ResolveCommit does not work with CockroachRestart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustPanic(t, func() { pgxdb.InTx(tt.db, fn, tt.opts...) })
			if s, _ := got.(string); !strings.HasPrefix(s, tt.want) {
				t.Errorf("panic %q, want it to start with %q", got, tt.want)
			}
		})
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// fn swallows a statement's error (a unique violation) and returns nil: the
// transaction is aborted, and its COMMIT only rolls back (docs/backends.md
// §1.1, §1.2). ResolveCommit's read before COMMIT then fails with 25P02;
// that says nothing of the read or of the server's version, and the caller
// gets what it gets without the option: the same error ("the transaction
// had failed before COMMIT", pgx.ErrTxCommitRollback), not retried. When
// the answer to that COMMIT is lost, the outcome is ambiguous without the
// option and stays so with it, the reason naming the failed transaction.
func TestResolveCommitKeepsTheErrorOfASwallowedStatement(t *testing.T) {
	admin := newPool(t, 1)
	table := resolveTable("swallowed")
	createTable(t, admin, table, "id int PRIMARY KEY", "INSERT INTO "+table+" VALUES (1)")
	p, pool := proxied(t)
	run := func(cut bool, opts ...pgxdb.TxOption) (runs int, err error) {
		op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int, error) {
			runs++
			_, _ = tx.Exec(ctx, "INSERT INTO "+table+" VALUES (1)") // 23505, swallowed
			if cut {
				p.CutAfter([]byte("commit"))
			}
			return 1, nil
		}, opts...)
		_, err = op.With(dbop.WithRetry(retryAtOnce, dbop.MaxAttempts(2))).Run(t.Context())
		return runs, err
	}

	t.Run("answered", func(t *testing.T) {
		plainRuns, plain := run(false)
		resolvedRuns, resolved := run(false, pgxdb.ResolveCommit())
		if !errors.Is(plain, pgx.ErrTxCommitRollback) || !strings.Contains(plain.Error(), "not returned by fn") || plainRuns != 1 {
			t.Fatalf("without ResolveCommit: %v after %d runs; want the failed transaction's error after 1", plain, plainRuns)
		}
		if resolved == nil || resolved.Error() != plain.Error() || !errors.Is(resolved, pgx.ErrTxCommitRollback) {
			t.Errorf("with ResolveCommit: %v; want the error without it: %v", resolved, plain)
		}
		if v, want := dbop.VerdictOf(resolved), dbop.VerdictOf(plain); v != want || !final(v) || resolvedRuns != plainRuns {
			t.Errorf("with ResolveCommit: verdict %v after %d runs; want %v after %d, as without it", v, resolvedRuns, want, plainRuns)
		}
	})
	t.Run("answer lost", func(t *testing.T) {
		plainRuns, plain := run(true)
		resolvedRuns, resolved := run(true, pgxdb.ResolveCommit())
		var ace *scopes.AmbiguousCommitError
		if !errors.As(plain, &ace) || plainRuns != 1 {
			t.Fatalf("without ResolveCommit: %v after %d runs; want an ambiguous commit after 1", plain, plainRuns)
		}
		if !errors.As(resolved, &ace) || dbop.VerdictOf(resolved) != dbop.Ambiguous || resolvedRuns != 1 {
			t.Fatalf("with ResolveCommit: %v (verdict %v) after %d runs; want an ambiguous commit after 1, as without it", resolved, dbop.VerdictOf(resolved), resolvedRuns)
		}
		if !errors.Is(ace.Resolve, resolve.ErrFailedBeforeCommit) {
			t.Errorf("the resolution's reason %v does not say that the transaction had failed before COMMIT", ace.Resolve)
		}
	})
	var n int
	if err := admin.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 1 {
		t.Errorf("count: %d, %v; want 1 row", n, err)
	}
}
