// Package sqldialect defines the value that describes a database/sql
// backend to github.com/dbop-go/dbop/adapters/sqldb: its name, its SQL
// family, its classifier and its COMMIT judgement. sqldb exposes the type
// as sqldb.Dialect; it lives here so that packages which may link a driver
// (github.com/dbop-go/dbop/adapters/mysqldb) can build values of it without
// sqldb importing them.
package sqldialect

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
)

// Family is the SQL a backend speaks: how savepoint names are quoted and how
// per-attempt server timeouts are set.
type Family uint8

const (
	// Postgres is PostgreSQL and the databases on its wire protocol:
	// SET LOCAL timeouts, "quoted" names.
	Postgres Family = iota + 1
	// MySQL is MySQL: session variables innodb_lock_wait_timeout and
	// max_execution_time, `quoted` names.
	MySQL
	// MariaDB is MariaDB: as MySQL, with max_statement_time for the
	// statement time limit.
	MariaDB
	// SQLite is SQLite: PRAGMA busy_timeout, "quoted" names.
	SQLite
)

var familyNames = [...]string{Postgres: "postgres", MySQL: "mysql", MariaDB: "mariadb", SQLite: "sqlite"}

// String returns the family's name: "postgres", "mysql", "mariadb" or
// "sqlite".
func (f Family) String() string {
	if f.Valid() {
		return familyNames[f]
	}
	return fmt.Sprintf("Family(%d)", uint8(f))
}

// Valid reports whether f is one of the declared families.
func (f Family) Valid() bool { return f >= Postgres && f <= SQLite }

// Dialect describes the database and driver behind a *sql.DB. Its values
// are built once, as package variables of the adapters (sqldb.Postgres,
// sqldb.SQLite, mysqldb.MySQL, mysqldb.MariaDB); to change a rule, copy one
// and set the field. The zero Dialect is invalid, and so is one missing a
// field: [Check] says which.
type Dialect struct {
	// Name names the dialect in messages: "postgres", "mariadb", ….
	Name string
	// Family is the SQL the backend speaks.
	Family Family
	// Classify is the dialect's classifier: the backend's rules, then the
	// transport and context rules. It is wired in after the caller's
	// ClassifyBy classifiers.
	Classify dbop.Classifier
	// CommitOutcome judges an error returned by COMMIT: dbop.Ambiguous when
	// the transaction may have been committed, another verdict when it
	// certainly was not (dbop.Unclassified lets the classifiers decide). See
	// scopes.CommitOutcome.
	CommitOutcome func(error) dbop.Verdict
}

// String returns d's Name, or a description of an invalid Dialect.
func (d Dialect) String() string {
	if d.Name == "" {
		return fmt.Sprintf("Dialect{Family: %v}", d.Family)
	}
	return d.Name
}

// Check returns an error naming what is missing from d, or nil when d is
// usable.
func Check(d Dialect) error {
	var missing []string
	if d.Name == "" {
		missing = append(missing, "no Name")
	}
	if !d.Family.Valid() {
		missing = append(missing, "invalid "+d.Family.String())
	}
	if d.Classify == nil {
		missing = append(missing, "no Classify")
	}
	if d.CommitOutcome == nil {
		missing = append(missing, "no CommitOutcome")
	}
	switch {
	case len(missing) == 4:
		return errors.New("the zero Dialect")
	case len(missing) > 0:
		return fmt.Errorf("dialect %v: %s", d, strings.Join(missing, ", "))
	}
	return nil
}
