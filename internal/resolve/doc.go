// Package resolve holds what the adapters share to learn the outcome of a
// COMMIT whose answer was lost (scopes.ResolveCommit), and to turn the time
// left on a context into server-side limits. It links no driver: the
// adapters hand it functions that run statements on their connections.
//
// PostgreSQL (docs/backends.md §8.8): the transaction's id is read in its
// own round trip just before COMMIT ([PGTxSQL]); after a lost answer,
// pg_xact_status on another connection tells committed from aborted, and a
// transaction still in progress is ended with pg_terminate_backend so that
// a late COMMIT cannot land after the answer was given ([PGTx.Resolve]).
// Each answer counts only on the same server incarnation (a crash-restart
// hands transaction ids out again), and committed only once a commit of
// the resolver's own has waited for the synchronous standbys.
//
// MySQL and MariaDB have no such function: a random token is written into
// a table the library owns inside the transaction, just before COMMIT
// ([Marker.Write]), and looked for on another connection after a lost
// answer, by a locking read that waits until the transaction that wrote
// it has ended, after its connection was ended if it was still open
// ([Marker.Resolve]). Nothing is read from information_schema.
//
// See docs/ambiguity.md for what each backend can and cannot resolve.
package resolve
