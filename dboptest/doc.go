// Package dboptest provides fakes for unit-testing dbop operations.
//
// # Error constructors
//
// The classifiers in github.com/dbop-go/dbop/classifiers recognise drivers'
// own error types, so tests need the real values, not look-alikes:
//
//   - [PgError] and [MySQLError] build a *pgconn.PgError and a
//     *mysql.MySQLError, whose fields are exported.
//   - modernc.org/sqlite's *sqlite.Error has unexported fields, so
//     [SQLiteBusy], [SQLiteBusySnapshot], [SQLiteLocked],
//     [SQLiteConstraintUnique] and [SQLiteConstraintPrimaryKey] provoke the
//     real error against a fresh database in the test's temporary directory
//     and return it. Each call opens its own database; nothing is cached.
//   - [NetworkError], [BadConn] and [InvalidConn] return the transport errors
//     that drivers pass up when a connection breaks.
//
// # Scripted operations
//
// [Script] returns a fake operation that fails with a list of errors in turn
// and then succeeds with a value, counting its calls; it checks what a retry
// policy does with each kind of error without a database:
//
//	s := dboptest.Script(42, deadlock, deadlock)
//	v, err := s.Op().With(policy).Run(ctx) // 42, nil
//	s.Calls()                              // 3
//
// # Backoff schedules
//
// [Schedule] lists the delays a retry using a [github.com/dbop-go/dbop.Backoff]
// would wait, feeding each back as the previous one; with a seeded
// [math/rand/v2.Source] a jittered schedule is reproducible, for tests and
// documentation:
//
//	dboptest.Schedule(dbop.Exponential(100*time.Millisecond, time.Second), 6, nil)
//	// [100ms 200ms 400ms 800ms 1s 1s]
//
// # Recording transactions
//
// A [Recorder] is a fake database for github.com/dbop-go/dbop/scopes: its
// Begin method is a scopes.BeginFunc, and its transactions ([*Tx]) implement
// scopes.Tx and scopes.Savepointer and take the operation's own statements
// through [Tx.Exec]. It logs every statement as a string ("BEGIN",
// "SAVEPOINT dbop_sp_1", "INSERT a", "COMMIT", …), so a test compares the
// exact statement log with cmp.Diff, and [Recorder.FailNext] scripts
// failures ("the second COMMIT fails with a network error"):
//
//	var rec dboptest.Recorder
//	rec.FailNext("UPDATE b", lockTimeout)
//	op := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) { … })
//	_, err := op.Run(ctx)
//	if diff := cmp.Diff(want, rec.Log()); diff != "" { … }
//
// The fakes are safe for concurrent use, and the zero Recorder is ready to
// use.
package dboptest
