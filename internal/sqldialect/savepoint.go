package sqldialect

import (
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
)

// SavepointEnded returns err, the error of ROLLBACK TO SAVEPOINT name or
// RELEASE SAVEPOINT name that caller's savepointer ran on family f, as
// Ambiguous when it says that the savepoint no longer exists on MySQL,
// MariaDB or SQLite. The scope created it before the step, and the step's
// own errors that end the transaction never reach these statements (the
// scope leaves them to the transaction's owner): the server ended the
// transaction while the step ran and the step went on (a deadlock, 1213,
// that it did not return, as a rows loop that never checks rows.Err()
// does; an interrupted write on SQLite) or the step committed it (DDL
// commits implicitly on MySQL). Those servers run the statements that
// follow on their own, each committed at once (docs/backends.md §3.2,
// §5.5): what the step ran after the transaction ended was applied, and
// running the transaction again could apply it twice. On PostgreSQL an
// error the step went on after aborts the transaction instead, and err is
// returned as it is.
func SavepointEnded(caller string, f Family, name string, err error) error {
	if err == nil || !savepointGone(f, name, err) {
		return err
	}
	return dbop.Classify(fmt.Errorf("%s: savepoint %s no longer exists: %v ended the transaction while the step ran, "+
		"and the step went on (a deadlock it did not return, as from a rows loop that never checks rows.Err(), "+
		"an interrupted write on SQLite, or a statement that commits): the statements it ran after that were committed on their own, "+
		"so what was applied is unknown: return the error instead of going on: %w", caller, name, f, err), dbop.Ambiguous)
}

// savepointGone reports whether err says that the savepoint name does not
// exist: MySQL's and MariaDB's 1305 ER_SP_DOES_NOT_EXIST, "SAVEPOINT name
// does not exist", which go-sql-driver/mysql reports as "Error 1305
// (42000): …" (the adapters link no driver, so it reads the message); or
// SQLite's "no such savepoint: name" (modernc.org/sqlite prefixes "SQL
// logic error: ", mattn/go-sqlite3 returns the message alone).
func savepointGone(f Family, name string, err error) bool {
	msg := err.Error()
	switch f {
	case MySQL, MariaDB:
		return strings.Contains(msg, "Error 1305 (") || strings.Contains(msg, "Error 1305:") ||
			strings.Contains(msg, "SAVEPOINT "+name+" does not exist")
	case SQLite:
		return strings.Contains(msg, "no such savepoint: "+name)
	}
	return false
}
