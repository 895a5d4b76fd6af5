package classifiers

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/dbop-go/dbop"
)

// Network classifies the transport errors that any driver passes up when a
// connection breaks. Each of these is RetryTransaction, because a broken
// connection takes its transaction with it (docs/backends.md §2.7, §4.3,
// §4.6, §7.7, §10.1):
//
//   - [driver.ErrBadConn]: the driver should have sent nothing
//     (database/sql driver.go: it "should NOT be returned if there's a
//     possibility that the database server might have performed the
//     operation"), though pgx's database/sql driver after a lost answer
//     and lib/pq on a FATAL answer or EOF return it all the same (§10.2,
//     §2.15): after a statement of a transaction, that changes nothing;
//     after a COMMIT of your own or a write in autocommit, see below;
//   - any [net.Error], timeouts included, and [net.ErrClosed];
//   - [io.ErrUnexpectedEOF]: the connection ended inside a reply;
//   - syscall.ECONNRESET, ECONNREFUSED, ECONNABORTED and EPIPE.
//
// io.EOF is deliberately absent: it is the normal end of many reads and
// says nothing about a connection by itself.
//
// A network error that answers a COMMIT leaves the outcome unknown
// (docs/backends.md §11). Only the transaction scope knows that the failed
// statement was the COMMIT, so it is the scope that reports such an error as
// Ambiguous. A COMMIT of your own, or a write in autocommit (its own
// COMMIT), under a retry with this classifier may be applied twice: run it
// in a transaction scope.
//
// [context.DeadlineExceeded] implements net.Error, so Network also returns
// RetryTransaction for it, as [Context] does.
//
// Any other error is Unclassified. Network is safe for concurrent use.
func Network(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	switch {
	case errors.Is(err, driver.ErrBadConn),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE):
		return dbop.RetryTransaction
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return dbop.RetryTransaction
	}
	return dbop.Unclassified
}
