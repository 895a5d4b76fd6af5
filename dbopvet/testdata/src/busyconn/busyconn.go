// Package busyconn holds the cases of the tx-on-busy-conn check: an InTx
// or Do given a connection on which the same function began a
// transaction by hand that is still open.
package busyconn

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"
)

type User struct{ ID int64 }

func step(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (2)")
	return err
}

func pgxStep(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "INSERT INTO t VALUES (2)")
	return err
}

func gormStep(ctx context.Context, tx *gorm.DB) error {
	return tx.WithContext(ctx).Create(&User{}).Error
}

// --- true positives ---------------------------------------------------

func sqlConn(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		return err
	}
	_, err = sqldb.Do(conn, sqldb.Postgres, step).With(dbop.WithRetry(dbop.Constant(time.Millisecond))).Run(ctx) // want `^conn \(\*sql.Conn\) is the connection the transaction tx was begun on by hand \(line \d+\), still open here: sqldb.Do begins again on the same connection, where MySQL and MariaDB commit tx at START TRANSACTION, and PostgreSQL ignores the second BEGIN, so its ROLLBACK undoes tx's work and its COMMIT commits it; run the step in a savepoint of tx \(sqldb.InSavepoint\(tx, sqldb.Postgres\) in its With\), or pass the pool \(db\), not the connection$`
	if err != nil {
		return err
	}
	return tx.Commit()
}

func pgxpoolConn(ctx context.Context, pool *pgxpool.Pool) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	_, err = pgxdb.InTx(c, func(ctx context.Context, inner pgx.Tx) (int, error) { // want `^c \(\*pgxpool.Conn\) is the connection the transaction tx was begun on by hand \(line \d+\), still open here: pgxdb.InTx begins again on the same connection, where PostgreSQL ignores a BEGIN inside a transaction, so its ROLLBACK would undo tx's work and its COMMIT commit it \(pgxdb refuses it at run time, not retryable\); run the step in a savepoint of tx \(pgxdb.InSavepoint\(tx\) in its With\), or pass the pool \(pool\), not the connection$`
		return 0, pgxStep(ctx, inner)
	}).Run(ctx)
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func pgxConn(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if _, err := pgxdb.Do(conn, pgxStep).Run(ctx); err != nil { // want `^conn \(\*pgx.Conn\) is the connection the transaction tx was begun on by hand \(line \d+\), still open here: .* or pass a pool, not the connection$`
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

func gormConnection(ctx context.Context, gdb *gorm.DB) error {
	return gdb.Connection(func(c *gorm.DB) error {
		tx := c.Begin()
		if err := tx.Create(&User{}).Error; err != nil {
			tx.Rollback()
			return err
		}
		if _, err := gormdb.Do(c.WithContext(ctx), gormStep).Run(ctx); err != nil { // want `^c \(\*gorm.DB\) is the connection the transaction tx was begun on by hand \(line \d+\), still open here: gormdb.Do begins again on the same connection, where MySQL and MariaDB commit tx at START TRANSACTION, .*gormdb.InSavepoint\(tx\) in its With\), or pass the pool \(gdb\), not the connection$`
			tx.Rollback()
			return err
		}
		return tx.Commit().Error
	})
}

// A Rollback on the error path that returns leaves the transaction open
// on the path that goes on.
func rolledBackOnlyOnError(ctx context.Context, conn *sql.Conn, fail bool) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if fail {
		_ = tx.Rollback()
		return errors.New("failed")
	}
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx)) // want `^conn \(\*sql.Conn\) is the connection the transaction tx was begun on by hand`
}

// A deferred Rollback runs when the function returns, after the step.
func deferredEnd(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var b sqldb.Beginner = conn
	return errOf(sqldb.Do(b, sqldb.SQLite, step).Run(ctx)) // want `^b \(conn, \*sql.Conn\) is the connection the transaction tx was begun on by hand`
}

// Inside a loop: the transaction begun before it is open on the first
// pass.
func inLoop(ctx context.Context, conn *sql.Conn, n int) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for range n {
		if err := errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx)); err != nil { // want `^conn \(\*sql.Conn\) is the connection`
			return err
		}
	}
	return tx.Commit()
}

// A function that uses the transaction without ending it leaves it open.
func insertWith(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (3)")
	return err
}

func usedByHelper(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := insertWith(ctx, tx); err != nil {
		return err
	}
	if tx != nil {
		return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx)) // want `^conn \(\*sql.Conn\) is the connection the transaction tx was begun on by hand`
	}
	return tx.Commit()
}

// --- negatives ----------------------------------------------------------

// Committed before the step, on every path.
func committedBefore(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx))
}

// Rolled back before the step.
func rolledBackBefore(ctx context.Context, c *pgxpool.Conn) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	_ = tx.Rollback(ctx)
	return errOf(pgxdb.Do(c, pgxStep).Run(ctx))
}

// Committed in one branch only: the analyzer cannot tell, and stays
// silent.
func committedInABranch(ctx context.Context, conn *sql.Conn, early bool) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if early {
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx))
}

// Ended by a COMMIT statement on the transaction.
func commitStatement(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx))
}

// Ended by a function the analyzer sees commit it.
func finish(tx *sql.Tx) error { return tx.Commit() } // want finish:"endsTx\\(param 0 commits\\)"

func endedByHelper(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := finish(tx); err != nil {
		return err
	}
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx))
}

// Handed to a function value that may end it: unsure, silent.
func handedOver(ctx context.Context, conn *sql.Conn, end func(*sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := end(tx); err != nil {
		return err
	}
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx))
}

// The pool passed instead of the connection.
func poolPassed(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := errOf(sqldb.Do(db, sqldb.Postgres, step).Run(ctx)); err != nil {
		return err
	}
	return tx.Commit()
}

// The fix: the step in a savepoint of the caller's transaction.
func savepointUsed(ctx context.Context, conn *sql.Conn, op dbop.Op[int]) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := op.With(sqldb.InSavepoint(tx, sqldb.Postgres)).Run(dbop.WithinTx(ctx)); err != nil {
		return err
	}
	return tx.Commit()
}

// Another connection than the one the transaction is on.
func otherConn(ctx context.Context, db *sql.DB) error {
	a, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	b, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	tx, err := a.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := errOf(sqldb.Do(b, sqldb.Postgres, step).Run(ctx)); err != nil {
		return err
	}
	return tx.Commit()
}

// A transaction begun on a pool: the pool hands InTx another connection.
func beganOnPool(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := errOf(pgxdb.Do(pool, pgxStep).Run(ctx)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// A *gorm.DB that is a pool, not a Connection's: Begin and InTx take two
// connections.
func gormPool(ctx context.Context, gdb *gorm.DB) error {
	tx := gdb.Begin()
	defer tx.Rollback()
	if err := errOf(gormdb.Do(gdb, gormStep).Run(ctx)); err != nil {
		return err
	}
	return tx.Commit().Error
}

// Committed inside the Connection before the step.
func gormCommitted(ctx context.Context, gdb *gorm.DB) error {
	return gdb.Connection(func(c *gorm.DB) error {
		tx := c.Begin()
		if err := tx.Create(&User{}).Error; err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.WithContext(ctx).Commit().Error; err != nil {
			return err
		}
		return errOf(gormdb.Do(c, gormStep).Run(ctx))
	})
}

// The transaction begun after the step, or only in a branch before it.
func begunAfter(ctx context.Context, conn *sql.Conn) error {
	if err := errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx)); err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	return tx.Commit()
}

func begunInABranch(ctx context.Context, conn *sql.Conn, own bool) error {
	if own {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
	}
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx))
}

// A COMMIT whose text the analyzer cannot read: silent.
func textNotConstant(ctx context.Context, conn *sql.Conn, q string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, q); err != nil {
		_ = tx.Rollback()
		return err
	}
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx))
}

// Ended by a COMMIT statement on the connection itself.
func commitOnConn(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	_ = tx
	if _, err := conn.ExecContext(ctx, "COMMIT /* yours */"); err != nil {
		return err
	}
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx))
}

type ender interface{ End(*sql.Tx) error }

// Handed to an interface method, which may end it: silent.
func endedByInterface(ctx context.Context, conn *sql.Conn, e ender) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := e.End(tx); err != nil {
		return err
	}
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx))
}

// Rolled back inside a function literal run before the call: silent.
func endedInLiteral(ctx context.Context, c *pgxpool.Conn) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	func() {
		defer tx.Rollback(ctx)
	}()
	return errOf(pgxdb.Do(c, pgxStep).Run(ctx))
}

// The operation built while the transaction is open, and run after it
// committed: silent.
func builtBeforeRunAfter(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	op := sqldb.Do(conn, sqldb.Postgres, step)
	if err := tx.Commit(); err != nil {
		return err
	}
	return errOf(op.Run(ctx))
}

// Silenced, with a reason.
func ignored(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	//dbopvet:ignore this test shows what the server does with a second BEGIN
	return errOf(sqldb.Do(conn, sqldb.Postgres, step).Run(ctx))
}

func errOf(_ struct{}, err error) error { return err }
