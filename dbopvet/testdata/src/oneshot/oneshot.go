// Package oneshot holds the cases of the one-shot check: a source that
// can be used up once (a pgx.CopyFromSource, a *pgx.Batch, an io.Reader
// copied by pgconn), built outside a function a retry may run more than
// once, and used up inside it.
package oneshot

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

var (
	pool    *pgxpool.Pool
	retried = dbop.WithRetry(dbop.Exponential(time.Millisecond, time.Second))
	columns = []string{"id", "name"}
)

// --- true positives ---------------------------------------------------

// The shape the reviewer found: the rows' iterator built before Do.
func copyUsers(ctx context.Context, rows [][]any) error {
	src := pgx.CopyFromRows(rows)
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src) // want `^src \(pgx.CopyFromSource\) is built outside the function pgxdb.Do runs \(line 31\) and consumed by tx.CopyFrom inside it; dbop.WithRetry in retried \(line 35\) may run the function more than once: the first attempt consumes src, and a retry copies nothing and commits: success reported, no rows written; build it inside the function$`
		return err
	}).With(retried).Run(ctx)
	return err
}

// The operation kept in a variable, the retry added to it later.
func copySlice(ctx context.Context, ids []int64) (int64, error) {
	src := pgx.CopyFromSlice(len(ids), func(i int) ([]any, error) { return []any{ids[i]}, nil })
	op := pgxdb.InTx(pool, func(ctx context.Context, tx pgx.Tx) (int64, error) {
		return tx.CopyFrom(ctx, pgx.Identifier{"ids"}, []string{"id"}, src) // want `^src \(pgx.CopyFromSource\) is built outside the function pgxdb.InTx runs \(line 41\) and consumed by tx.CopyFrom inside it; dbop.WithRetry \(line 45\) may run`
	})
	return op.With(dbop.WithRetry(dbop.Constant(time.Millisecond), dbop.Idempotent())).Run(ctx)
}

// A source handed in by the caller, in an operation of one's own.
func copyFrom(ctx context.Context, src pgx.CopyFromSource) (int64, error) {
	op := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		return pool.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src) // want `^src \(pgx.CopyFromSource\) is declared outside the operation's function \(line 49\) and consumed by pool.CopyFrom inside it; dbop.WithRetry in retried \(line 53\) may run`
	})
	return op.With(retried).Run(ctx)
}

// A batch queued before Do.
func sendBatch(ctx context.Context) error {
	batch := &pgx.Batch{}
	batch.Queue("UPDATE jobs SET state = 'done' WHERE id = 1")
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		return tx.SendBatch(ctx, batch).Close() // want `^batch \(\*pgx.Batch\) is built outside the function pgxdb.Do runs \(line 58\) and sent by tx.SendBatch inside it; dbop.WithRetry in retried \(line 62\) may run the function more than once: pgx keeps in batch the descriptions of the statements the first attempt prepared, and a retry on another connection fails with 26000 \(prepared statement does not exist\); build the batch inside the function$`
	}).With(retried).Run(ctx)
	return err
}

// A batch declared as a value, sent by address.
func sendBatchValue(ctx context.Context) error {
	var batch pgx.Batch
	batch.Queue("UPDATE jobs SET state = 'done' WHERE id = 1")
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		return tx.SendBatch(ctx, &batch).Close() // want `^batch \(pgx.Batch\) is declared outside the function pgxdb.Do runs \(line 68\) and sent by tx.SendBatch inside it`
	}).With(retried).Run(ctx)
	return err
}

// A reader built before Do, copied through pgconn.
func copyCSV(ctx context.Context, csv string) error {
	r := strings.NewReader(csv)
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Conn().PgConn().CopyFrom(ctx, r, "COPY users FROM STDIN (FORMAT csv)") // want `^r \(\*strings.Reader\) is built outside the function pgxdb.Do runs \(line 78\) and read by tx.Conn\(\).PgConn\(\).CopyFrom inside it; dbop.WithRetry in retried \(line 82\) may run the function more than once: the first attempt reads r to its end, and a retry copies nothing and commits: success reported, no rows written; build it inside the function \(or seek it back to the start there\)$`
		return err
	}).With(retried).Run(ctx)
	return err
}

// A file opened before Do.
func copyFile(ctx context.Context, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Conn().PgConn().CopyFrom(ctx, f, "COPY users FROM STDIN") // want `^f \(\*os.File\) is built outside the function pgxdb.Do runs \(line 88\) and read by`
		return err
	}).With(retried).Run(ctx)
	return err
}

// A savepoint step under a retry.
func copyInSavepoint(ctx context.Context, tx pgx.Tx, rows [][]any) error {
	src := pgx.CopyFromRows(rows)
	step := dbop.Op[int64](func(ctx context.Context) (int64, error) {
		return tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src) // want `^src \(pgx.CopyFromSource\) is built outside the operation's function \(line 102\) and consumed by tx.CopyFrom inside it; dbop.WithRetry \(line 106\) may run`
	})
	_, err := step.With(dbop.WithRetry(dbop.Constant(0)), pgxdb.InSavepoint(tx)).Run(dbop.WithinTx(ctx))
	return err
}

// Do run inside an operation a retry runs again: the source is built
// outside the operation's function.
func copyNested(ctx context.Context, rows [][]any) error {
	src := pgx.CopyFromRows(rows)
	op := dbop.Op[struct{}](func(ctx context.Context) (struct{}, error) {
		return pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src) // want `^src \(pgx.CopyFromSource\) is built outside the operation's function \(line 113\) and consumed by tx.CopyFrom inside it; dbop.WithRetry in retried \(line 120\) may run`
			return err
		}).Run(ctx)
	})
	_, err := op.With(retried).Run(ctx)
	return err
}

// A wrapper of Do.
func inTx(fn func(ctx context.Context, tx pgx.Tx) error) dbop.Op[struct{}] { // want inTx:"txFunc\\(param 0: tx 1 ctx 0 writes\\)"
	return pgxdb.Do(pool, fn)
}

func copyWrapped(ctx context.Context, rows [][]any) error {
	src := pgx.CopyFromRows(rows)
	_, err := inTx(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src) // want `^src \(pgx.CopyFromSource\) is built outside the function oneshot.inTx runs \(line 130\) and consumed by`
		return err
	}).With(retried).Run(ctx)
	return err
}

// --- negatives --------------------------------------------------------

// Built inside: each attempt has its own.
func copyBuiltInside(ctx context.Context, rows [][]any) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		src := pgx.CopyFromRows(rows)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, pgx.CopyFromRows(rows))
		return err
	}).With(retried).Run(ctx)
	return err
}

// Declared outside, built again inside.
func copyRebuilt(ctx context.Context, rows [][]any) error {
	var src pgx.CopyFromSource
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		src = pgx.CopyFromRows(rows)
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src)
		return err
	}).With(retried).Run(ctx)
	return err
}

// Captured, but used only outside the function.
func copyOutside(ctx context.Context, rows [][]any) error {
	src := pgx.CopyFromRows(rows)
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src); err != nil {
		return err
	}
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE stats SET loaded = now()")
		return err
	}).With(retried).Run(ctx)
	return err
}

// A batch rebuilt at each attempt.
func sendBatchPerAttempt(ctx context.Context, ids []int64) error {
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		batch := &pgx.Batch{}
		for _, id := range ids {
			batch.Queue("UPDATE jobs SET state = 'done' WHERE id = $1", id)
		}
		return tx.SendBatch(ctx, batch).Close()
	}).With(retried).Run(ctx)
	return err
}

// A batch variable from outside, assigned a new batch at each attempt.
func sendBatchReassigned(ctx context.Context) error {
	var batch *pgx.Batch
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		batch = &pgx.Batch{}
		batch.Queue("UPDATE jobs SET state = 'done' WHERE id = 1")
		return tx.SendBatch(ctx, batch).Close()
	}).With(retried).Run(ctx)
	return err
}

// No retry: the function runs once.
func copyOnce(ctx context.Context, rows [][]any) error {
	src := pgx.CopyFromRows(rows)
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src)
		return err
	}).Run(ctx)
	return err
}

// A reader rewound at each attempt.
func copyRewound(ctx context.Context, data []byte) error {
	r := bytes.NewReader(data)
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := tx.Conn().PgConn().CopyFrom(ctx, r, "COPY users FROM STDIN")
		return err
	}).With(retried).Run(ctx)
	return err
}

// A source of the user's own type, which may start over.
type rowsSource struct {
	rows [][]any
	i    int
}

func (s *rowsSource) Next() bool             { s.i++; return s.i <= len(s.rows) }
func (s *rowsSource) Values() ([]any, error) { return s.rows[s.i-1], nil }
func (s *rowsSource) Err() error             { return nil }

func copyOwnSource(ctx context.Context, rows [][]any) error {
	src := &rowsSource{rows: rows}
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		src.i = 0
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src)
		return err
	}).With(retried).Run(ctx)
	return err
}

// A decorator the analyzer cannot see into, and no retry.
func copyUnknownDecorator(ctx context.Context, rows [][]any, d dbop.Decorator) error {
	src := pgx.CopyFromRows(rows)
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src)
		return err
	}).With(d).Run(ctx)
	return err
}

// Silenced, with a reason.
func copySilenced(ctx context.Context, rows [][]any) error {
	src := pgx.CopyFromRows(rows)
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		//dbopvet:ignore the table is truncated first, and an empty copy fails the check below
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src)
		return err
	}).With(retried).Run(ctx)
	return err
}

// A function literal kept for after the attempt, not run by it.
func copyLater(ctx context.Context, rows [][]any) (func(context.Context) error, error) {
	src := pgx.CopyFromRows(rows)
	var later func(context.Context) error
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		later = func(ctx context.Context) error {
			_, err := pool.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src)
			return err
		}
		return nil
	}).With(retried).Run(ctx)
	return later, err
}

// --- the number of attempts -------------------------------------------

// A retry that makes one attempt only: no retry runs the function again.
func copySingleAttempt(ctx context.Context, rows [][]any) error {
	src := pgx.CopyFromRows(rows)
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src)
		return err
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1))).Run(ctx)
	return err
}

// The last MaxAttempts wins: this retry makes three attempts.
func copyMaxAttemptsOverridden(ctx context.Context, rows [][]any) error {
	src := pgx.CopyFromRows(rows)
	_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, columns, src) // want `^src \(pgx.CopyFromSource\) is built outside the function pgxdb.Do runs \(line \d+\) and consumed by tx.CopyFrom inside it; dbop.WithRetry \(line \d+\)`
		return err
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(1), dbop.MaxAttempts(3))).Run(ctx)
	return err
}
