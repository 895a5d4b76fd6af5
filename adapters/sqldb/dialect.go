package sqldb

import (
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/internal/sqldialect"
)

// Dialect describes the database and driver behind a *sql.DB: its Name,
// its Family (the SQL it speaks: how savepoint names are quoted and how
// per-attempt server timeouts are set), its classifier (Classify, wired in
// after the [ClassifyBy] classifiers) and the rules that judge a failed
// COMMIT (CommitOutcome). It is a value: this package declares [Postgres]
// and [SQLite], and github.com/dbop-go/dbop/adapters/mysqldb declares
// mysqldb.MySQL and mysqldb.MariaDB, which need go-sql-driver/mysql's
// error type.
//
// [InTx], [Do] and [InSavepoint] copy the Dialect they are given, so a
// value changed later does not change an operation already built. To change
// one rule, copy a declared Dialect and set the field:
//
//	d := sqldb.Postgres
//	d.Name = "postgres+pgx"
//	d.CommitOutcome = myCommitRules
//
// Never assign to the declared variables themselves: every user of the
// package shares them. The zero Dialect, or one missing a field, is
// invalid: the functions of this package panic on it, naming what is
// missing.
type Dialect = sqldialect.Dialect

// Postgres is PostgreSQL, or a database on its wire protocol, through pgx's
// database/sql driver (github.com/jackc/pgx/v5/stdlib) or lib/pq. Its
// classifier is [classifiers.Postgres], then [classifiers.Network], then
// [classifiers.Context]; its COMMIT rules are [classifiers.PostgresCommit].
// Both recognise errors by capability and link no driver; pgx's sentinel
// errors (pgx.ErrTxClosed, pgx.ErrTxCommitRollback, a bare
// pgconn.ErrConnClosed) are then Unclassified, and a COMMIT error only pgx
// could tell apart is ambiguous. On pgx's driver, add
// ClassifyBy(pgxdb.Classifier) (github.com/dbop-go/dbop/adapters/pgxdb) for
// its sentinels.
var Postgres = Dialect{
	Name:          "postgres",
	Family:        sqldialect.Postgres,
	Classify:      postgresClassify,
	CommitOutcome: classifiers.PostgresCommit,
}

// SQLite is SQLite through modernc.org/sqlite, the pure-Go driver, which it
// does not link. Its classifier is [classifiers.SQLite], then
// [classifiers.Network], then [classifiers.Context]; its COMMIT rules are
// [classifiers.SQLiteCommit]. For mattn/go-sqlite3, add its classifier
// (github.com/dbop-go/dbop/classifiers/mattnsqlite) with [ClassifyBy].
var SQLite = Dialect{
	Name:          "sqlite",
	Family:        sqldialect.SQLite,
	Classify:      sqliteClassify,
	CommitOutcome: classifiers.SQLiteCommit,
}

// postgresClassify is the classifier of [Postgres].
func postgresClassify(err error) dbop.Verdict {
	return withTransport(classifiers.Postgres(err), err)
}

// sqliteClassify is the classifier of [SQLite].
func sqliteClassify(err error) dbop.Verdict {
	return withTransport(classifiers.SQLite(err), err)
}

// withTransport returns v, the backend's verdict on err, or, when the
// backend had none, the verdict of the transport and context rules.
func withTransport(v dbop.Verdict, err error) dbop.Verdict {
	if v != dbop.Unclassified || err == nil {
		return v
	}
	if v := classifiers.Network(err); v != dbop.Unclassified {
		return v
	}
	return classifiers.Context(err)
}

// mustBeValid panics, naming caller, when d is not a usable Dialect.
func mustBeValid(d Dialect, caller string) {
	if err := sqldialect.Check(d); err != nil {
		panic("sqldb: " + caller + ": " + err.Error() + ": use sqldb.Postgres, sqldb.SQLite, mysqldb.MySQL or mysqldb.MariaDB, or a copy of one")
	}
}

// quote returns name as a quoted SQL identifier: `name` for MySQL and
// MariaDB, "name" for PostgreSQL and SQLite, with the quote character
// doubled inside.
func quote(f sqldialect.Family, name string) string {
	q := `"`
	if f == sqldialect.MySQL || f == sqldialect.MariaDB {
		q = "`"
	}
	return q + strings.ReplaceAll(name, q, q+q) + q
}
