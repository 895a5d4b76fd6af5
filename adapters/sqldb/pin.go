package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// connSource gives InTx a connection to pin for one attempt.
type connSource interface {
	// conn returns a connection and whether InTx owns it (must close it).
	conn(ctx context.Context) (c *sql.Conn, owned bool, err error)
}

// poolSource pins a connection of a pool: *sql.DB has Conn.
type poolSource struct {
	db interface {
		Conn(ctx context.Context) (*sql.Conn, error)
	}
}

func (p poolSource) conn(ctx context.Context) (*sql.Conn, bool, error) {
	c, err := p.db.Conn(ctx)
	return c, true, err
}

// callerConn is a *sql.Conn the caller passed: it is already pinned, and the
// caller closes it.
type callerConn struct{ c *sql.Conn }

func (cc callerConn) conn(context.Context) (*sql.Conn, bool, error) { return cc.c, false, nil }

// pinned is the connection an attempt's transaction runs on, when InTx
// holds it: to carry the attempt's session settings, or, on MySQL and
// MariaDB, to keep a transaction that COMMIT or ROLLBACK may have left open
// out of the pool (see settle).
type pinned struct {
	conn    *sql.Conn
	owned   bool          // close it after the attempt
	restore string        // sets the session back to its previous values; "" when none were changed
	timeout time.Duration // bounds restore and the question of settle
}

// take takes a connection from src with no settings to apply.
// *sql.DB.Conn sends nothing to the server (a pooled connection is reset
// lazily by the driver), so the transaction costs no extra round trip.
func take(ctx context.Context, src connSource, timeout time.Duration) (*pinned, error) {
	conn, owned, err := src.conn(ctx)
	if err != nil {
		return nil, err
	}
	return &pinned{conn: conn, owned: owned, timeout: timeout}, nil
}

// pin takes a connection from src and applies the attempt's settings s:
// on MySQL and MariaDB in one statement that also saves the values it
// replaces; on SQLite after reading the current value.
func pin(ctx context.Context, src connSource, s *session, timeout time.Duration) (*pinned, error) {
	conn, owned, err := src.conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqldb: pin a connection: %w", err)
	}
	p := &pinned{conn: conn, owned: owned, timeout: timeout, restore: s.restore}
	if s.read != "" {
		prev := make([]string, len(s.names))
		dest := make([]any, len(prev))
		for i := range prev {
			dest[i] = &prev[i]
		}
		if err := conn.QueryRowContext(ctx, s.read).Scan(dest...); err != nil {
			p.close() // nothing was changed yet
			return nil, fmt.Errorf("sqldb: %s: %w", s.read, err)
		}
		if p.restore, err = s.restoreSQL(prev); err != nil {
			p.close()
			return nil, err
		}
	}
	if _, err := conn.ExecContext(ctx, s.set); err != nil {
		if s.read == "" {
			// MySQL's SET changes all of its variables or none
			// (docs/backends.md §3.10): nothing to restore. But the
			// error may have broken the connection: let database/sql
			// judge it.
			p.close()
		} else {
			p.release(ctx) // a PRAGMA may have taken effect: restore
		}
		return nil, fmt.Errorf("sqldb: %s: %w", s.set, err)
	}
	return p, nil
}

// release restores the session's previous values and gives the connection
// back. It runs after the transaction has ended, with a context that ignores
// the caller's cancellation, bounded by the rollback timeout: a deadline
// that ended the attempt must not leave the settings behind.
//
// If the restore fails, the connection may still carry the attempt's
// settings, so it must not serve anyone else: release makes database/sql
// discard it. Conn.Raw hands the error its function returns to the
// connection's release function, which closes the *sql.Conn on
// driver.ErrBadConn, and DB.putConn then closes the driver connection
// instead of returning it to the pool (docs/backends.md §10.6; Go 1.26
// database/sql, sql.go: Conn.Raw, Conn.closemuRUnlockCondReleaseConn,
// DB.putConn). A connection
// the caller passed is discarded too: its *sql.Conn then returns
// sql.ErrConnDone, rather than silently keeping a changed session.
func (p *pinned) release(ctx context.Context) {
	if p.restore != "" {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
		defer cancel()
		if _, err := p.conn.ExecContext(rctx, p.restore); err != nil {
			discard(p.conn)
		}
	}
	p.close()
}

// maxGuardWait bounds the question settle asks, whatever the rollback
// timeout: it is answered at once by a healthy server, and by a Galera node
// outside the primary component too (docs/backends.md §7.5).
const maxGuardWait = time.Second

// settle gives the connection back once the transaction on it has ended,
// with endErr the error of its COMMIT or ROLLBACK (or of BEGIN), and
// reports whether it discarded a connection that is still open.
//
// On MySQL and MariaDB (guard), a COMMIT or ROLLBACK that failed may have
// left the transaction open on the session: a Galera node outside the
// primary component answers both with 1047 and keeps it (docs/backends.md
// §7.11). database/sql would give that connection back to its pool after
// any error but driver.ErrBadConn, and the next BEGIN on it would commit
// the leftover, work InTx judged not committed and may have run again. So
// after an error, settle asks SELECT @@in_transaction (a failure path
// only: a successful end asks nothing), and discards the connection, which
// closes the session and so rolls the leftover back, unless the answer is
// 0. A connection database/sql already closed (driver.ErrBadConn) needs
// nothing.
func (p *pinned) settle(ctx context.Context, endErr error, guard bool) (discarded bool) {
	if endErr == nil || !guard {
		p.release(ctx)
		return false
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(p.timeout, maxGuardWait))
	var open int64
	err := p.conn.QueryRowContext(qctx, "SELECT @@in_transaction").Scan(&open)
	cancel()
	if err == nil && open == 0 {
		p.release(ctx)
		return false
	}
	discarded = discard(p.conn)
	p.close()
	return discarded
}

// close gives back a connection InTx owns.
func (p *pinned) close() {
	if p.owned {
		_ = p.conn.Close()
	}
}

// discard closes conn and makes database/sql close its driver connection
// rather than pool it (see pinned.release), and reports whether it did. On
// a conn already closed it does nothing (Raw returns sql.ErrConnDone).
func discard(conn *sql.Conn) bool {
	return errors.Is(conn.Raw(func(any) error { return driver.ErrBadConn }), driver.ErrBadConn)
}
