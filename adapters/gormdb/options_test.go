package gormdb_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/classifiers"
)

// Programmer errors panic when the operation or decorator is built, with
// a message that names the fix.
func TestConstructionPanics(t *testing.T) {
	pg, _ := fakeGORM(t, "postgres", nil)
	my, _ := fakeGORM(t, "mysql", nil)
	lite, _ := fakeGORM(t, "sqlite", nil)
	other, _ := fakeGORM(t, "sqlserver", nil)
	mariadb := gormdb.Dialect(mysqldb.MariaDB)
	noName := sqldb.Postgres
	noName.Name = ""
	const needsDialect = "a *gorm.DB on the mysql dialector needs gormdb.Dialect(mysqldb.MySQL) or (mysqldb.MariaDB): gormdb does not link go-sql-driver itself"
	tests := []struct {
		name string
		f    func()
		want string // in the panic's message
	}{
		{"InTx: nil db", func() { gormdb.InTx(nil, update) }, "gormdb: InTx: the *gorm.DB is nil"},
		{"InTx: nil fn", func() { gormdb.InTx[int](pg, nil) }, "gormdb: InTx: the function to run in the transaction is nil"},
		{"InTx: nil option", func() { gormdb.InTx(pg, update, nil) }, "gormdb: InTx: option 1 of 1 is nil"},
		{"Do: nil db", func() { gormdb.Do(nil, updateOnly) }, "gormdb: Do: the *gorm.DB is nil"},
		{"Do: nil fn", func() { gormdb.Do(pg, nil) }, "gormdb: Do: the function to run in the transaction is nil"},
		{"Do: nil option", func() { gormdb.Do(pg, updateOnly, gormdb.ReadOnly(), nil) }, "gormdb: Do: option 2 of 2 is nil"},
		{"InSavepoint: nil tx", func() { gormdb.InSavepoint(nil) }, "gormdb: InSavepoint: the *gorm.DB is nil"},
		{"InSavepoint: nil option", func() { gormdb.InSavepoint(pg, nil) }, "gormdb: InSavepoint: option 1 of 1 is nil"},

		{"InTx: mysql without a Dialect", func() { gormdb.InTx(my, update) }, "gormdb: InTx: " + needsDialect},
		{"Do: mysql without a Dialect", func() { gormdb.Do(my, updateOnly, gormdb.ReadOnly()) }, "gormdb: Do: " + needsDialect},
		{"InSavepoint: mysql without a Dialect", func() { gormdb.InSavepoint(my) }, "gormdb: InSavepoint: " + needsDialect},
		{"InTx: a postgres Dialect on mysql", func() { gormdb.InTx(my, update, gormdb.Dialect(sqldb.Postgres)) },
			"gormdb: InTx: gormdb.Dialect(postgres) is of the postgres family, but the *gorm.DB is on the mysql dialector: use mysqldb.MySQL or mysqldb.MariaDB"},
		{"InSavepoint: a MariaDB Dialect on postgres", func() { gormdb.InSavepoint(pg, mariadb) },
			"gormdb: InSavepoint: gormdb.Dialect(mariadb) is of the mariadb family, but the *gorm.DB is on the postgres dialector: use sqldb.Postgres"},
		{"Do: a Postgres Dialect on sqlite", func() { gormdb.Do(lite, updateOnly, gormdb.Dialect(sqldb.Postgres)) },
			"the *gorm.DB is on the sqlite dialector: use sqldb.SQLite"},
		{"an invalid Dialect", func() { gormdb.Dialect(sqldb.Dialect{}) }, "gormdb: Dialect: the zero Dialect: use sqldb.Postgres"},
		{"a Dialect missing a field", func() { gormdb.Dialect(noName) }, "gormdb: Dialect: dialect Dialect{Family: postgres}: no Name"},

		{"lock timeout on mysql", func() { gormdb.InTx(my, update, mariadb, gormdb.LockTimeout(time.Second)) },
			"gormdb: InTx: LockTimeout and StatementTimeout are implemented for PostgreSQL only, not mariadb"},
		{"statement timeout on sqlite", func() { gormdb.InTx(lite, update, gormdb.StatementTimeout(time.Second)) }, "not sqlite"},
		{"lock timeout on an unknown dialector", func() { gormdb.Do(other, updateOnly, gormdb.LockTimeout(time.Second)) }, "not sqlserver"},
		{"snapshot isolation on mysql", func() { gormdb.InTx(my, update, mariadb, gormdb.Isolation(sql.LevelSnapshot)) },
			"gormdb: InTx: the mysql dialector's driver does not support the isolation level Snapshot"},
		{"linearizable isolation on postgres", func() { gormdb.InTx(pg, update, gormdb.Isolation(sql.LevelLinearizable)) }, "Linearizable"},
		{"zero lock timeout", func() { gormdb.LockTimeout(0) }, "gormdb: LockTimeout(0s): the timeout must be positive"},
		{"negative statement timeout", func() { gormdb.StatementTimeout(-time.Second) }, "gormdb: StatementTimeout(-1s): the timeout must be positive"},
		{"timeout beyond PostgreSQL's range", func() { gormdb.LockTimeout(1 << 31 * time.Millisecond) }, "PostgreSQL accepts at most 2147483647 ms"},
		{"zero rollback timeout", func() { gormdb.RollbackTimeout(0) }, "gormdb: RollbackTimeout(0s): the timeout must be positive"},
		{"no classifier", func() { gormdb.ClassifyBy() }, "gormdb: ClassifyBy(): a Classifier is required"},
		{"nil classifier", func() { gormdb.ClassifyBy(classifiers.Postgres, nil) }, "gormdb: ClassifyBy: classifier 2 of 2 is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("did not panic")
				}
				if msg := fmt.Sprint(r); !strings.Contains(msg, tt.want) {
					t.Errorf("panic %q; want it to contain %q", msg, tt.want)
				}
			}()
			tt.f()
		})
	}
}

// What fits is accepted: the limits themselves, the dialect gormdb
// chooses given explicitly, a copy of it with a rule changed, and any
// dialect for a dialector gormdb does not know.
func TestConstructionAccepts(t *testing.T) {
	pg, _ := fakeGORM(t, "postgres", nil)
	my, _ := fakeGORM(t, "mysql", nil)
	lite, _ := fakeGORM(t, "sqlite", nil)
	other, _ := fakeGORM(t, "sqlserver", nil)
	custom := sqldb.Postgres
	custom.Name = "postgres+mine"
	gormdb.InTx(pg, update, gormdb.LockTimeout((1<<31-1)*time.Millisecond), gormdb.Isolation(sql.LevelSnapshot))
	gormdb.InTx(my, update, gormdb.Dialect(mysqldb.MySQL), gormdb.Isolation(sql.LevelSerializable), gormdb.ReadOnly())
	gormdb.Do(pg, updateOnly, gormdb.Dialect(custom), gormdb.StatementTimeout(time.Second))
	gormdb.InSavepoint(my, gormdb.Dialect(mysqldb.MariaDB), gormdb.RollbackTimeout(time.Second))
	gormdb.InSavepoint(lite, gormdb.Dialect(sqldb.SQLite))
	gormdb.InSavepoint(pg)
	gormdb.InTx(other, update, gormdb.Isolation(sql.LevelLinearizable))
	gormdb.InTx(other, update, gormdb.Dialect(mysqldb.MariaDB))
	gormdb.InTx(other, update, gormdb.Dialect(sqldb.Postgres), gormdb.LockTimeout(time.Second))
}

// A transaction-only option is not a SavepointOption: passing one to
// InSavepoint does not compile. The options that fit both are Options.
func TestOptionKinds(t *testing.T) {
	var (
		_ gormdb.Option = gormdb.ClassifyBy(classifiers.Postgres)
		_ gormdb.Option = gormdb.RollbackTimeout(time.Second)
		_ gormdb.Option = gormdb.Dialect(mysqldb.MariaDB)
	)
	txOnly := map[string]gormdb.TxOption{
		"ReadOnly":         gormdb.ReadOnly(),
		"Isolation":        gormdb.Isolation(sql.LevelSerializable),
		"LockTimeout":      gormdb.LockTimeout(time.Second),
		"StatementTimeout": gormdb.StatementTimeout(time.Second),
	}
	for name, o := range txOnly {
		if _, ok := o.(gormdb.SavepointOption); ok {
			t.Errorf("%s is a SavepointOption; want a transaction-only option", name)
		}
	}
}
