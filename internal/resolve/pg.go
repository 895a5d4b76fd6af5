package resolve

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dbop-go/dbop/internal/sqlstate"
	"github.com/dbop-go/dbop/scopes"
)

// QueryRowFunc runs query with args on one connection and scans its one
// row into dest. The adapters build one over a pgx.Conn or a *sql.Conn.
type QueryRowFunc func(ctx context.Context, query string, args []any, dest ...any) error

// serverSQL is the identity of the server incarnation a session is on,
// as text: the postmaster's start time in microseconds since the epoch, a
// slash, and the lowest pid among the processes pg_stat_activity shows
// with no user (the checkpointer, background writer, WAL writer, startup
// and WAL receiver processes). It reads pg_stat_get_activity, the
// function under the view, which the view's joins would make several
// times dearer to plan, in every transaction.
//
// The start time tells another server (a promoted standby) and a restart
// from the server that ran the transaction. It does not change at a
// crash-restart: when one backend dies abnormally (an OOM kill, a
// segfault), the postmaster ends every other process, reinitialises
// shared memory and runs crash recovery, without restarting itself
// (restart_after_crash, on by default). Recovery replays only the WAL
// that reached disk, and hands out again a transaction id that was
// assigned but never written there (always that of a transaction that
// wrote nothing yet, whose COMMIT never arrived): pg_xact_status of the
// lost transaction's id then answers for another transaction. Every
// process the postmaster started is replaced at a crash-restart, so the
// pids change; pg_stat_activity shows their pids to every role (their
// backend_type only to privileged ones, hence "no user"). A pid repeats
// only when the kernel's pid numbering wraps around, and a process of
// that set that restarts by itself (a WAL receiver) at most makes a
// resolution fail safe. See docs/backends.md §11.1.
//
// The start time is read as a number, not as text: its text follows the
// session's TimeZone and DateStyle, which the transaction may have set.
const serverSQL = "(extract(epoch FROM pg_postmaster_start_time()) * 1000000)::int8::text || '/' || " +
	"COALESCE((SELECT min(pid) FROM pg_stat_get_activity(NULL) WHERE usesysid IS NULL)::text, '')"

// PGTxSQL reads, inside a transaction and just before its COMMIT, what
// [PGTx.Resolve] needs: the transaction's id, assigned now if the
// transaction has none yet (a transaction that wrote no row may still have
// an effect at COMMIT: a NOTIFY, whose notification PostgreSQL sends only
// then, and assigns no id for; docs/backends.md §8.8), except on a standby,
// where none can be assigned and nothing is written (empty then); the
// backend's pid; the identity of the server incarnation (serverSQL), which
// tells the server that ran the transaction from another one reached later
// (a promoted standby, a restart, a crash-restart); and the transaction's
// synchronous_commit, which says how durable its COMMIT would have been
// when acknowledged. It is one round trip, and contains no "commit" (the
// setting's name is spelt in two pieces), which the tests' fault proxies
// wait for to cut a connection at its COMMIT.
const PGTxSQL = "SELECT CASE WHEN pg_is_in_recovery() THEN COALESCE(pg_current_xact_id_if_assigned()::text, '') ELSE pg_current_xact_id()::text END, pg_backend_pid(), " +
	serverSQL + ", current_setting('synchronous_c' || 'ommit')"

// PGTx is what [PGTxSQL] read: scan its row into [PGTx.Dest].
type PGTx struct {
	ID     string // the xid8, "" when none was assigned
	PID    int64
	Server string // the server incarnation (serverSQL)
	Sync   string // synchronous_commit
}

// Dest returns the destinations to scan the row of [PGTxSQL] into.
func (p *PGTx) Dest() []any { return []any{&p.ID, &p.PID, &p.Server, &p.Sync} }

// Written reports whether the transaction wrote anything: whether it had
// an id.
func (p PGTx) Written() bool { return p.ID != "" }

// ErrFailedBeforeCommit is the reason a resolution is not tried for a
// transaction that had failed before COMMIT (see [FailedBeforeCommit]): its
// COMMIT could only roll back, and its lost answer is left as the adapter
// judges it without ResolveCommit.
var ErrFailedBeforeCommit = errors.New("the transaction had failed before COMMIT (a statement's error was not returned by fn), " +
	"so its id was not read; its COMMIT could only roll back, and it is judged as without ResolveCommit")

// FailedBeforeCommit reports whether err, the error of reading [PGTxSQL],
// is 25P02 (in_failed_sql_transaction): a statement of the transaction
// failed and fn went on without returning its error (docs/backends.md
// §1.1). That is no failure of the read, nor of the server's version: the
// adapters then send COMMIT as without ResolveCommit, which the server
// answers with ROLLBACK (§1.2), so that the caller gets the error and the
// verdict it would get without the option. The SQLSTATE is read
// through an SQLState() string method (*pgconn.PgError, lib/pq's
// *pq.Error), as the classifiers read it.
func FailedBeforeCommit(err error) bool { return sqlstate.Of(err) == "25P02" }

// ErrOtherServer is the reason a resolution fails when the connection it
// asks on reaches another server than the one that ran the transaction:
// there, transaction ids name other transactions (docs/backends.md §8.8).
var ErrOtherServer = errors.New("the server reached is not the one that ran the transaction (a failover, a restart, a crash-restart, or a load balancer)")

// ErrNotReplicated is the reason a resolution fails when the transaction
// committed on the primary but no synchronous standby confirmed it within
// the resolution's bound: a failover may still lose it.
var ErrNotReplicated = errors.New("the transaction committed on the primary, but no synchronous standby confirmed it in time")

// pollStart and pollMax bound the wait between two looks at a transaction
// still in progress.
const (
	pollStart = time.Millisecond
	pollMax   = 20 * time.Millisecond
)

// PGConn is what [PGTx.Resolve] needs of a connection other than the
// transaction's: one row of a query, and a statement run by the simple
// query protocol (several statements in one string, no arguments).
type PGConn struct {
	QueryRow QueryRowFunc
	Exec     ExecFunc
}

// statusSQL reads the server's identity and the transaction's status.
const statusSQL = "SELECT " + serverSQL + ", COALESCE(pg_xact_status($1::text::xid8), '')"

// Resolve asks, on c, a connection other than the transaction's, what
// became of the transaction p describes, whose COMMIT answer was lost. ctx
// bounds it.
//
// pg_xact_status answers committed, aborted, in progress, or NULL for an
// id too old to know (docs/backends.md §8.8); every answer is taken
// together with the server's identity, and trusted only if that is the
// identity read in the transaction. In progress means the old backend
// still holds the transaction: it may be committing right now, or it may
// never have received the COMMIT and sit idle in its transaction until TCP
// tells it the client is gone, which can take hours. Resolve then ends it
// with pg_terminate_backend, matched by pid and by its transaction id
// (pg_stat_activity.backend_xid, the low 32 bits of the xid8), so that no
// other session is touched; a COMMIT the backend had already begun
// completes first (the commit record is written with interrupts held
// off), one not yet read never runs. It then looks until the status is
// final.
//
// Committed is reported only once the commit is as durable as its
// acknowledgement would have made it (see [PGTx.confirm]).
func (p PGTx) Resolve(ctx context.Context, c PGConn) (scopes.Resolution, error) {
	id, err := strconv.ParseUint(p.ID, 10, 64)
	if err != nil {
		return scopes.Unresolved, fmt.Errorf("resolve: transaction id %q: %w", p.ID, err)
	}
	if strings.HasSuffix(p.Server, "/") {
		return scopes.Unresolved, fmt.Errorf("resolve: pg_stat_activity showed no server process to tell a crash-restart by: pg_xact_status(%s) may answer for another transaction", p.ID)
	}
	terminated := false
	wait := pollStart
	for {
		var server, status string
		if err := c.QueryRow(ctx, statusSQL, []any{p.ID}, &server, &status); err != nil {
			return scopes.Unresolved, fmt.Errorf("resolve: pg_xact_status(%s): %w", p.ID, err)
		}
		if server != p.Server {
			return scopes.Unresolved, fmt.Errorf("resolve: pg_xact_status(%s): %w", p.ID, ErrOtherServer)
		}
		switch status {
		case "committed":
			if err := p.confirm(ctx, c.Exec); err != nil {
				return scopes.Unresolved, err
			}
			return scopes.Committed, nil
		case "aborted":
			return scopes.Aborted, nil
		case "in progress":
		case "":
			return scopes.Unresolved, fmt.Errorf("resolve: pg_xact_status(%s) is NULL: the transaction is too old to know", p.ID)
		default:
			return scopes.Unresolved, fmt.Errorf("resolve: pg_xact_status(%s) = %q", p.ID, status)
		}
		if !terminated {
			var n int64
			err := c.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid = $1 AND backend_xid::text = $2",
				[]any{p.PID, strconv.FormatUint(id&0xffffffff, 10)}, &n)
			if err != nil {
				return scopes.Unresolved, fmt.Errorf("resolve: the transaction is in progress, and ending its backend %d failed: %w", p.PID, err)
			}
			terminated = true
		}
		if err := sleep(ctx, wait); err != nil {
			return scopes.Unresolved, fmt.Errorf("resolve: the transaction was still in progress on backend %d: %w", p.PID, err)
		}
		wait = min(2*wait, pollMax)
	}
}

// confirm returns nil once the lost commit is as durable as a successful
// COMMIT under the transaction's synchronous_commit would have made it,
// within ctx's bound.
//
// Under synchronous replication a COMMIT waits, once its commit record is
// in the primary's WAL and pg_xact_status already says committed to
// others, until the synchronous standbys confirm it; meanwhile
// pg_xact_status says in progress. A cancel (the client's, a
// CancelRequest from a driver closing a broken connection, or the
// resolver's own pg_terminate_backend) ends that wait, and the commit then
// stays on the primary alone ("already committed locally, but might not
// have been replicated to the standby"), which a failover loses. So
// committed on the primary does not mean acknowledged.
//
// confirm commits a transaction of its own, on the resolver's connection,
// under the same synchronous_commit: its commit waits, as the lost one
// should have, until the standbys have the WAL up to its own commit
// record, which follows the lost one's. The transaction must write WAL
// (a commit that only assigned an id waits for nothing): it emits an empty
// transactional logical decoding message with the prefix "dbop", which
// changes no table, and which logical decoding consumers see as a message
// of a prefix they do not know. PostgreSQL ends a cancelled wait with a
// WARNING and a successful COMMIT; so statement_timeout is off for it, and
// a context done when it returns makes the confirmation fail. Without
// synchronous standbys the commit only flushes the WAL locally. Under
// synchronous_commit off or local a COMMIT's acknowledgement promises
// nothing of standbys, and confirm sends nothing.
func (p PGTx) confirm(ctx context.Context, exec ExecFunc) error {
	level := "on"
	switch p.Sync {
	case "off", "local":
		return nil
	case "remote_write", "remote_apply":
		level = p.Sync
	}
	_, err := exec(ctx, "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL synchronous_commit = "+level+
		"; SELECT pg_logical_emit_message(true, 'dbop', ''); COMMIT")
	if err == nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		return fmt.Errorf("resolve: %w (synchronous_commit = %s): %w", ErrNotReplicated, p.Sync, err)
	}
	return nil
}

// sleep waits d, or until ctx ends, and returns ctx's cause then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
