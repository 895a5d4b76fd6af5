package sqldb

// ResolveCommit makes [InTx] find out what became of a COMMIT whose answer
// was lost — the connection broke after COMMIT was sent — instead of
// returning an ambiguous error (see [scopes.ResolveCommit]). How depends
// on the dialect's family:
//
//   - PostgreSQL ([Postgres]): just before COMMIT, in a round trip of its
//     own, InTx reads the transaction's id (pg_current_xact_id_if_assigned,
//     PostgreSQL 13+), the backend's pid, the server's identity (its start
//     time and the pids of its auxiliary processes, which a crash-restart
//     replaces) and the transaction's synchronous_commit (a transaction
//     that had already failed, whose read fails with 25P02, is committed
//     and judged as without ResolveCommit).
//     After a lost answer it asks pg_xact_status(id) on another connection
//     of db: committed → fn's value and a nil error; aborted → an
//     [*scopes.AbortedCommitError], retry-transaction, retried without
//     [dbop.Idempotent]; in progress → it ends the old backend with
//     pg_terminate_backend (matched by pid and transaction id) so that a
//     COMMIT still on its way never runs, and asks again. Committed is
//     reported only after a commit of the resolver's own under the same
//     synchronous_commit, which waits for the synchronous standbys past
//     the lost commit (a cancelled wait leaves a commit on the primary
//     alone; see pgxdb.ResolveCommit). A transaction
//     with no id yet gets one then (a NOTIFY acts at COMMIT, with none); a
//     READ ONLY one, and one on a standby, wrote nothing, and its lost
//     answer changes nothing (retried instead under
//     [Isolation](sql.LevelSerializable)).
//   - MySQL and MariaDB (mysqldb.MySQL, mysqldb.MariaDB): just before
//     COMMIT, InTx inserts a commit marker — a random token — into
//     dbop_commit_markers, a table you create once with
//     mysqldb.CreateCommitMarkers; the same statement returns the
//     connection's id (LAST_INSERT_ID(CONNECTION_ID() | server hash << 32)).
//     After a lost answer it looks for the token on another connection of
//     db. On another server than the transaction's (a Galera node):
//     found → committed. On the transaction's server, a locking read of
//     the token decides, whatever the session's isolation level (a plain
//     read under READ UNCOMMITTED would see an open transaction's
//     marker): InnoDB makes it wait until the transaction that inserted
//     it has ended: found → committed, not found → aborted. While that transaction is still open (a COMMIT may
//     still be on its way) its connection is ended first (KILL
//     CONNECTION), so that the COMMIT can never run (docs/backends.md
//     §11.2). On MariaDB the first look runs with wsrep_sync_wait = 1, so
//     that a Galera node sees what the cluster committed (§7.4). Read-only
//     transactions ([ReadOnly]) write no marker. One transaction in 64
//     deletes markers older than 15 minutes after its COMMIT.
//   - SQLite: nothing; there is no connection to lose between the program
//     and the engine, and the option does nothing.
//
// The resolution runs without the caller's cancellation, bounded by
// [RollbackTimeout]. What cannot be resolved stays an
// [*scopes.AmbiguousCommitError], with the reason in its Resolve field: the
// server unreachable within that bound; another server reached than the one
// that ran the transaction (a failover, a crash-restart on PostgreSQL, or a
// load balancer spreading connections over Galera nodes when the marker is
// not found); on PostgreSQL, a commit no synchronous standby confirmed
// within the bound. Report
// resolutions with [scopes.OnCommitResolved].
//
// It costs one round trip per read-write transaction, whether or not an
// answer is ever lost (on MySQL and MariaDB an INSERT, too): see
// docs/ambiguity.md for the measurements. It is therefore not on by
// default.
//
// InTx panics when ResolveCommit is given on PostgreSQL, MySQL or MariaDB
// and db is not a *sql.DB (or another Beginner with a Conn(ctx) method):
// the resolution needs another connection.
func ResolveCommit() TxOption {
	return txOnly(func(c *config) { c.resolve = true })
}
