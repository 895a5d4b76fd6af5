package sqldb

import (
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
)

// Dialect names the database behind a *sql.DB. It picks the classifier, the
// rules that judge a failed COMMIT ([Dialect.CommitOutcome]), how per-attempt
// server timeouts are set, and how savepoint names are quoted. The zero
// Dialect is invalid: the functions of this package panic on it.
type Dialect uint8

const (
	// Postgres is PostgreSQL (or a database on its wire protocol) through
	// the pgx stdlib driver (github.com/jackc/pgx/v5/stdlib) or lib/pq.
	Postgres Dialect = iota + 1
	// MySQL is MySQL through github.com/go-sql-driver/mysql.
	MySQL
	// MariaDB is MariaDB through github.com/go-sql-driver/mysql. It differs
	// from MySQL in its statement time limit (max_statement_time, any
	// statement, error 1969, instead of max_execution_time, SELECT only,
	// error 3024).
	MariaDB
	// SQLite is SQLite through modernc.org/sqlite, the pure-Go driver. For
	// mattn/go-sqlite3, pass its classifier
	// (github.com/dbop-go/dbop/classifiers/mattnsqlite) with
	// [WithClassifier].
	SQLite
)

// String returns the dialect's name: "postgres", "mysql", "mariadb" or
// "sqlite".
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	case MariaDB:
		return "mariadb"
	case SQLite:
		return "sqlite"
	}
	return fmt.Sprintf("Dialect(%d)", uint8(d))
}

// valid reports whether d is one of the declared dialects.
func (d Dialect) valid() bool { return d >= Postgres && d <= SQLite }

// mustBeValid panics, naming caller, when d is not a declared dialect.
func (d Dialect) mustBeValid(caller string) {
	if !d.valid() {
		panic(fmt.Sprintf("sqldb: %s: invalid %v: use sqldb.Postgres, MySQL, MariaDB or SQLite", caller, d))
	}
}

// Classify is the dialect's classifier, the one [InTx] and [InSavepoint]
// wire in: the backend's classifier from github.com/dbop-go/dbop/classifiers
// ([classifiers.Postgres], [classifiers.MySQL] for MySQL and MariaDB,
// [classifiers.SQLite]), then [classifiers.Network], then
// [classifiers.Context]. The first verdict other than Unclassified wins. Use
// the method value d.Classify wherever a [dbop.Classifier] is wanted.
func (d Dialect) Classify(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	var v dbop.Verdict
	switch d {
	case Postgres:
		v = classifiers.Postgres(err)
	case MySQL, MariaDB:
		v = classifiers.MySQL(err)
	case SQLite:
		v = classifiers.SQLite(err)
	}
	if v != dbop.Unclassified {
		return v
	}
	if v := classifiers.Network(err); v != dbop.Unclassified {
		return v
	}
	return classifiers.Context(err)
}

// quote returns name as a quoted SQL identifier: `name` for MySQL and
// MariaDB, "name" for PostgreSQL and SQLite, with the quote character
// doubled inside.
func (d Dialect) quote(name string) string {
	q := `"`
	if d == MySQL || d == MariaDB {
		q = "`"
	}
	return q + strings.ReplaceAll(name, q, q+q) + q
}
