package gormdb

// ResolveCommit makes [InTx] find out what became of a COMMIT whose answer
// was lost — the connection broke after COMMIT was sent — instead of
// returning an ambiguous error (see [scopes.ResolveCommit]). It works as
// sqldb.ResolveCommit does, over the *sql.DB under db (db.DB()):
//
//   - on the postgres dialector, the transaction's id is read just before
//     COMMIT (pg_current_xact_id_if_assigned, PostgreSQL 13+; a
//     transaction that had already failed, whose read fails with 25P02, is
//     committed and judged as without ResolveCommit) and, after a lost
//     answer, pg_xact_status(id) is asked on another connection, the
//     old backend ended with pg_terminate_backend while the transaction is
//     still in progress;
//   - on the mysql dialector, with [Dialect](mysqldb.MySQL) or
//     (mysqldb.MariaDB), a commit marker is inserted just before COMMIT
//     into dbop_commit_markers, which you create once with
//     mysqldb.CreateCommitMarkers, and looked for on another connection,
//     by a locking read that waits until the old transaction has ended
//     (its connection ended with KILL CONNECTION while it is still open),
//     with wsrep_sync_wait on MariaDB;
//   - on the sqlite dialector, and a dialector this package does not
//     know, nothing: the option does nothing.
//
// Committed → fn's value and a nil error; aborted → an
// [*scopes.AbortedCommitError], retry-transaction, retried without
// [dbop.Idempotent]; what cannot be resolved stays an
// [*scopes.AmbiguousCommitError], with the reason in its Resolve field.
// A read-only transaction ([ReadOnly]) needs no read and writes no marker.
// The resolution runs without the caller's cancellation, bounded by
// [RollbackTimeout]; [scopes.OnCommitResolved] reports each one.
//
// It costs one round trip per read-write transaction (on MySQL and
// MariaDB an INSERT), whether or not an answer is ever lost: see
// docs/ambiguity.md. It is therefore not on by default.
//
// The statements it runs go below GORM's prepared-statement cache
// (PrepareStmt), since each carries a new token.
func ResolveCommit() TxOption {
	return txOnly(func(c *config) { c.resolve = true })
}
