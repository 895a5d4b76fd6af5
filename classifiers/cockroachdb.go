package classifiers

import (
	"errors"

	"github.com/dbop-go/dbop"
)

// CockroachDB classifies the errors of CockroachDB and then, for everything
// else, defers to [Postgres], since CockroachDB speaks the PostgreSQL
// protocol through the same drivers. Its own rules (docs/backends.md §6):
//
//	40001   RetryTransaction ("restart transaction: …"; crdb.ExecuteInTx retries it)
//	CR000   RetryTransaction (the legacy retry code crdb still accepts)
//	40003   Ambiguous ("result is ambiguous": only at COMMIT or RELEASE
//	        SAVEPOINT, or outside a transaction; retry only idempotent work)
//
// # YugabyteDB
//
// YugabyteDB YSQL needs no classifier of its own: [Postgres] (and so
// CockroachDB) already returns RetryTransaction for 40001 and 40P01, which
// YSQL documents as retryable by the client, and NotRetryable for 25P02,
// 2D000 and 3B001, which it documents as non-retriable (§6.6).
//
// CockroachDB is safe for concurrent use.
func CockroachDB(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	// crdb.ExecuteInTx's errIsRetryable: errors.As on
	// interface{ SQLState() string }, code "40001" or "CR000" (§6.4).
	if se, ok := errors.AsType[sqlStater](err); ok {
		switch se.SQLState() {
		case "40001", "CR000": // §6.1
			return dbop.RetryTransaction
		case "40003": // "result is ambiguous" (§6.3)
			return dbop.Ambiguous
		}
	}
	return Postgres(err)
}
