// Package pgconn is a stub of github.com/jackc/pgx/v5/pgconn.
package pgconn

import (
	"context"
	"io"
)

type CommandTag struct{ s string }

func (ct CommandTag) RowsAffected() int64 { return 0 }

type StatementDescription struct{ Name, SQL string }

type PgConn struct{}

func (pgConn *PgConn) CopyFrom(ctx context.Context, r io.Reader, sql string) (CommandTag, error) {
	return CommandTag{}, nil
}
