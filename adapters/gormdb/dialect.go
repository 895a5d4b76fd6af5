package gormdb

import (
	"fmt"
	"slices"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"gorm.io/gorm"
)

// The dialector names this package knows: those of gorm.io/driver/postgres,
// gorm.io/driver/mysql (MySQL and MariaDB) and gorm.io/driver/sqlite.
const (
	postgresDialector = "postgres"
	mysqlDialector    = "mysql"
	sqliteDialector   = "sqlite"
)

// dialectorName returns the name of db's dialector, or "" when it has none.
func dialectorName(db *gorm.DB) string {
	if db == nil || db.Config == nil || db.Dialector == nil {
		return ""
	}
	return db.Dialector.Name()
}

// backend is what InTx, Do and InSavepoint use of a dialect: resolved once,
// when they are called.
type backend struct {
	name          string            // the dialect's, for messages
	family        sqldialect.Family // 0 for a dialector this package does not know, without a Dialect
	classify      dbop.Classifier
	commitOutcome func(error) dbop.Verdict
}

// backendFor resolves the dialect of db for the function named caller: the
// one given with the Dialect option, checked against db's dialector, or the
// one this package chooses for the dialector. It panics, naming the fix,
// when the mysql dialector comes without a Dialect or a Dialect does not fit
// the dialector.
func backendFor(caller string, db *gorm.DB, given *sqldb.Dialect) backend {
	name := dialectorName(db)
	var fits []sqldialect.Family // the families the dialector can be; none: any
	var chosen *sqldb.Dialect    // this package's choice without a Dialect
	var want string              // what to pass instead of a Dialect that does not fit
	switch name {
	case postgresDialector:
		fits, chosen, want = []sqldialect.Family{sqldialect.Postgres}, &sqldb.Postgres, "sqldb.Postgres or a copy of it"
	case sqliteDialector:
		fits, chosen, want = []sqldialect.Family{sqldialect.SQLite}, &sqldb.SQLite, "sqldb.SQLite or a copy of it"
	case mysqlDialector:
		fits, want = []sqldialect.Family{sqldialect.MySQL, sqldialect.MariaDB}, "mysqldb.MySQL or mysqldb.MariaDB"
	}
	d := given
	switch {
	case d == nil && name == mysqlDialector:
		panic("gormdb: " + caller + ": a *gorm.DB on the mysql dialector needs gormdb.Dialect(mysqldb.MySQL) or (mysqldb.MariaDB): " +
			"gormdb does not link go-sql-driver itself")
	case d == nil && chosen != nil:
		d = chosen
	case d == nil:
		// A dialector this package does not know: the driver-free rules
		// of every backend, and every COMMIT error ambiguous (§11).
		if name == "" {
			name = "unknown"
		}
		return backend{
			name:          name,
			classify:      classifiers.Default,
			commitOutcome: func(error) dbop.Verdict { return dbop.Ambiguous },
		}
	case len(fits) > 0 && !slices.Contains(fits, d.Family):
		panic(fmt.Sprintf("gormdb: %s: gormdb.Dialect(%v) is of the %v family, but the *gorm.DB is on the %s dialector: use %s",
			caller, *d, d.Family, name, want))
	}
	return backend{name: d.Name, family: d.Family, classify: d.Classify, commitOutcome: d.CommitOutcome}
}

// backquotes reports whether savepoint names are quoted with backquotes
// (MySQL, MariaDB) rather than double quotes.
func (b backend) backquotes() bool {
	return b.family == sqldialect.MySQL || b.family == sqldialect.MariaDB
}
