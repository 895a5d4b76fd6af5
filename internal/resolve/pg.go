package resolve

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dbop-go/dbop/scopes"
)

// QueryRowFunc runs query with args on one connection and scans its one
// row into dest. The adapters build one over a pgx.Conn or a *sql.Conn.
type QueryRowFunc func(ctx context.Context, query string, args []any, dest ...any) error

// PGTxSQL reads, inside a transaction and just before its COMMIT, what
// [PGTx.Resolve] needs: the transaction's id, assigned now if the
// transaction has none yet (a transaction that wrote no row may still have
// an effect at COMMIT: a NOTIFY, whose notification PostgreSQL sends only
// then, and assigns no id for; docs/backends.md §8.8), except on a standby,
// where none can be assigned and nothing is written (empty then), the
// backend's pid, and
// the server's start time, which tells the server that ran the transaction
// from another one (a promoted standby, a restarted server) reached later.
// It is one round trip, and contains no "commit".
const PGTxSQL = "SELECT CASE WHEN pg_is_in_recovery() THEN COALESCE(pg_current_xact_id_if_assigned()::text, '') ELSE pg_current_xact_id()::text END, pg_backend_pid(), pg_postmaster_start_time()::text"

// PGTx is what [PGTxSQL] read: scan its row into &ID, &PID, &Start.
type PGTx struct {
	ID    string // the xid8, "" when none was assigned
	PID   int64
	Start string
}

// Written reports whether the transaction wrote anything: whether it had
// an id.
func (p PGTx) Written() bool { return p.ID != "" }

// ErrOtherServer is the reason a resolution fails when the connection it
// asks on reaches another server than the one that ran the transaction:
// there, transaction ids name other transactions (docs/backends.md §8.8).
var ErrOtherServer = errors.New("the server reached is not the one that ran the transaction (a failover, a restart, or a load balancer)")

// pollStart and pollMax bound the wait between two looks at a transaction
// still in progress.
const (
	pollStart = time.Millisecond
	pollMax   = 20 * time.Millisecond
)

// Resolve asks, through q on a connection other than the transaction's,
// what became of the transaction p describes, whose COMMIT answer was
// lost. ctx bounds it.
//
// pg_xact_status answers committed, aborted, in progress, or NULL for an
// id too old to know (docs/backends.md §8.8). In progress means the old
// backend still holds the transaction: it may be committing right now, or
// it may never have received the COMMIT and sit idle in its transaction
// until TCP tells it the client is gone, which can take hours. Resolve
// then ends it with pg_terminate_backend, matched by pid and by its
// transaction id (pg_stat_activity.backend_xid, the low 32 bits of the
// xid8), so that no other session is touched; a COMMIT the backend had
// already begun completes first (the commit record is written with
// interrupts held off), one not yet read never runs. It then looks until
// the status is final.
func (p PGTx) Resolve(ctx context.Context, q QueryRowFunc) (scopes.Resolution, error) {
	id, err := strconv.ParseUint(p.ID, 10, 64)
	if err != nil {
		return scopes.Unresolved, fmt.Errorf("resolve: transaction id %q: %w", p.ID, err)
	}
	var start, status string
	if err := q(ctx, "SELECT pg_postmaster_start_time()::text, COALESCE(pg_xact_status($1::text::xid8), '')", []any{p.ID}, &start, &status); err != nil {
		return scopes.Unresolved, fmt.Errorf("resolve: pg_xact_status(%s): %w", p.ID, err)
	}
	if start != p.Start {
		return scopes.Unresolved, fmt.Errorf("resolve: pg_xact_status(%s): %w", p.ID, ErrOtherServer)
	}
	terminated := false
	wait := pollStart
	for {
		switch status {
		case "committed":
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
			err := q(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid = $1 AND backend_xid::text = $2",
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
		if err := q(ctx, "SELECT COALESCE(pg_xact_status($1::text::xid8), '')", []any{p.ID}, &status); err != nil {
			return scopes.Unresolved, fmt.Errorf("resolve: pg_xact_status(%s): %w", p.ID, err)
		}
	}
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
