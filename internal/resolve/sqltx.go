package resolve

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/scopes"
)

// SQLConn is what a database/sql transaction offers to run statements in
// it: *sql.Tx has it, and so has GORM's ConnPool inside a transaction.
type SQLConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Conner hands out another connection: *sql.DB has it.
type Conner interface {
	Conn(ctx context.Context) (*sql.Conn, error)
}

// SQLTx is the resolution state of one database/sql transaction of
// sqldb.InTx or gormdb.InTx with ResolveCommit. A transaction serves one
// goroutine, and so does its SQLTx.
type SQLTx struct {
	Family       sqldialect.Family
	ReadOnly     bool // begun read-only: it writes nothing, and needs no id or marker
	Serializable bool // SERIALIZABLE: a read-only transaction may still fail at COMMIT

	pg     PGTx
	idRead bool
	failed bool // the id's read found the transaction failed (FailedBeforeCommit): COMMIT went as without ResolveCommit
	marker *Marker
}

// BeforeCommitError wraps the error of the statement run before COMMIT
// (the id's read, the marker's write): COMMIT was not sent, so nothing was
// committed.
type BeforeCommitError struct{ Err error }

func (e *BeforeCommitError) Error() string { return e.Err.Error() }
func (e *BeforeCommitError) Unwrap() error { return e.Err }

// BeforeCommit runs, in the transaction c runs statements in, what the
// resolution needs before COMMIT: on PostgreSQL the read of [PGTxSQL], on
// MySQL and MariaDB the write of a [Marker]; on SQLite, and for a
// read-only transaction, nothing. An error is a *BeforeCommitError (and
// wraps [ErrNoMarkerTable] when the marker table is missing); the caller
// rolls back instead of sending COMMIT. A PostgreSQL transaction that had
// already failed (25P02, [FailedBeforeCommit]) is no error: COMMIT is to
// be sent as without ResolveCommit, and the driver's error for its
// ROLLBACK answer judged by the dialect's rules as it would be without
// it.
func (s *SQLTx) BeforeCommit(ctx context.Context, c SQLConn) error {
	if s.ReadOnly {
		return nil
	}
	switch s.Family {
	case sqldialect.Postgres:
		err := c.QueryRowContext(ctx, PGTxSQL).Scan(s.pg.Dest()...)
		if FailedBeforeCommit(err) {
			s.failed = true
			return nil
		}
		if err != nil {
			return &BeforeCommitError{fmt.Errorf("ResolveCommit: reading the transaction id (PostgreSQL 13 or later): %w", err)}
		}
		s.idRead = true
	case sqldialect.MySQL, sqldialect.MariaDB:
		m := NewMarker()
		exec := func(ctx context.Context, query string) (int64, error) {
			res, err := c.ExecContext(ctx, query)
			if err != nil {
				return 0, err
			}
			return res.LastInsertId()
		}
		if err := m.Write(ctx, exec); err != nil {
			return &BeforeCommitError{fmt.Errorf("ResolveCommit: %w", err)}
		}
		s.marker = m
	}
	return nil
}

// AfterCommit runs, after a successful COMMIT of a transaction that wrote
// a marker, one time in 64, the bounded deletion of old markers
// ([CleanupSQL]) on db, as a statement of its own: a cleanup that fails
// or waits fails nothing. It returns whether it ran, and its error.
func (s *SQLTx) AfterCommit(ctx context.Context, db interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}) (bool, error) {
	if !s.marker.Written() || !CleanupDue() {
		return false, nil
	}
	_, err := db.ExecContext(ctx, CleanupSQL(s.Family == sqldialect.MariaDB))
	return true, err
}

// Resolve finds out, on a connection from db, what became of the
// transaction's COMMIT (see [PGTx.Resolve], [Marker.Resolve]).
func (s *SQLTx) Resolve(ctx context.Context, db Conner) (scopes.Resolution, error) {
	written := s.idRead && s.pg.Written() || s.marker.Written()
	switch {
	case s.Family == sqldialect.SQLite:
		return scopes.Unresolved, errors.New("ResolveCommit: SQLite needs no resolution, and has none")
	case s.ReadOnly, s.idRead && !s.pg.Written():
		if s.Serializable {
			return scopes.Aborted, nil // nothing written: running it again is safe
		}
		return scopes.NotWritten, nil
	case s.failed:
		// The COMMIT error was judged ambiguous (on database/sql the
		// ROLLBACK answer itself is, docs/backends.md §11): it would stay
		// so without ResolveCommit, and so it does, with a reason that
		// names fn's swallowed error.
		return scopes.Unresolved, fmt.Errorf("ResolveCommit: %w", ErrFailedBeforeCommit)
	case !written:
		return scopes.Unresolved, errors.New("ResolveCommit: nothing was read or written before COMMIT")
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return scopes.Unresolved, fmt.Errorf("ResolveCommit: another connection: %w", err)
	}
	defer conn.Close()
	q := sqlQueryRow(conn)
	exec := func(ctx context.Context, query string) (int64, error) {
		_, err := conn.ExecContext(ctx, query)
		return 0, err
	}
	if s.Family == sqldialect.Postgres {
		// A statement of several that fails, or is cancelled, may leave
		// the session inside the transaction it began: the connection
		// then goes, rather than back to the pool.
		pgExec := func(ctx context.Context, query string) (int64, error) {
			_, err := exec(ctx, query)
			if err != nil {
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
			return 0, err
		}
		return s.pg.Resolve(ctx, PGConn{QueryRow: q, Exec: pgExec})
	}
	return s.marker.Resolve(ctx, MarkerConn{QueryRow: q, Exec: exec}, s.Family == sqldialect.MariaDB)
}

// sqlQueryRow adapts c's QueryRowContext to a QueryRowFunc.
func sqlQueryRow(c interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) QueryRowFunc {
	return func(ctx context.Context, query string, args []any, dest ...any) error {
		return c.QueryRowContext(ctx, query, args...).Scan(dest...)
	}
}
