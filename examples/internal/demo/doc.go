// Package demo holds the plumbing the runnable examples under examples/
// share, so that each example's main.go is left with its own story: the
// schema, the operation, the pipeline, the phases and the check.
//
// It is internal to the examples and no part of dbop's API. Nothing in it
// retries, classifies or runs a transaction: that is what the examples show
// dbop doing.
//
// # Connection string
//
// Each example reads its connection string from an environment variable, a
// [DSNVar]: [DSNVar.MustGet] ends main with status 2 when it is not set,
// after printing [DSNVar.Message], which says what to set it to. The
// examples' tests check that with demotest.CheckMainWithoutDSN.
//
// # Output
//
// The examples' workers print progress concurrently: [Locked] wraps the
// run's writer so that their lines do not interleave. A [PhaseLog] tells
// what happens in one phase only (each retry of phase 1, say), and the
// hooks it is told from find the operation's name with [ID], which [WithID]
// put in the context the operation runs with. [Finished] begins the summary
// a run prints at its end; its rows line up in one column. [ExitOnFailure]
// ends main with status 1 when the run or its consistency check failed.
//
// # Counting
//
// [Stats] counts attempts, with [Stats.Attempt] as a dbop.Before hook, and
// retries by cause, from a dbop.OnRetry hook that names the cause:
// [PostgresCause] names a PostgreSQL error by its SQLSTATE.
//
// # Forcing an interleaving
//
// A [Rendezvous] holds the first attempts of a few operations until each
// of them has reached the same point (one row locked, say), so that a
// deadlock or a serialization failure happens on every run without sleeping.
// [Await] waits for a channel to close, or for the context to end.
//
// # Concurrency
//
// [LockedWriter], [PhaseLog], [Stats] and [Rendezvous] are safe for
// concurrent use; the zero values of [PhaseLog] and [Stats] are ready to use.
package demo
