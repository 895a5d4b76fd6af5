package gormdb

import (
	"database/sql"
	"errors"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

// The dialector names this package knows (gorm.io/driver/postgres and
// gorm.io/driver/mysql, whose Name methods return these; the mysql
// dialector serves MariaDB too).
const (
	postgresDialect = "postgres"
	mysqlDialect    = "mysql"
)

// dialectorName returns the name of db's dialector, or "" when it has none.
func dialectorName(db *gorm.DB) string {
	if db == nil || db.Config == nil || db.Dialector == nil {
		return ""
	}
	return db.Dialector.Name()
}

// Classifier returns the [dbop.Classifier] that [InTx] and [InSavepoint]
// use for db. It asks, in order, and returns the first verdict other than
// Unclassified:
//
//  1. GORM's own errors (see below);
//  2. the classifier of the backend under db's dialector:
//     classifiers.Postgres for "postgres" (GORM's postgres driver runs pgx
//     through database/sql, so its errors are *pgconn.PgError, DB-REFERENCE
//     §8), classifiers.MySQL for "mysql" (MySQL and MariaDB through
//     go-sql-driver/mysql), classifiers.Default for any other dialector;
//  3. a write inside a read-only transaction, PostgreSQL 25006
//     read_only_sql_transaction or MySQL/MariaDB 1792, which is
//     NotRetryable: the same write fails the same way on every attempt;
//  4. classifiers.Network and classifiers.Context, for the transport and
//     context errors database/sql passes up (driver.ErrBadConn, which pgx's
//     database/sql driver returns when nothing was sent, among them).
//
// # GORM's errors
//
// GORM's sentinel errors (gorm.ErrRecordNotFound, ErrDuplicatedKey,
// ErrForeignKeyViolated, ErrCheckConstraintViolated, ErrInvalidTransaction,
// ErrInvalidField, ErrMissingWhereClause, ErrInvalidData and the rest of
// gorm's errors.go) are all NotRetryable: each says the program asked for
// something that trying again cannot change. A record not found, in
// particular, is a result, not a failure of the database; an operation
// that wants to wait for a row written by someone else can return
// dbop.Transient(err) itself, and an error that already carries a verdict
// keeps it. database/sql's sql.ErrTxDone, met when the transaction was
// already ended (by fn calling Commit or Rollback itself), is NotRetryable
// for the same reason.
//
// With TranslateError, GORM replaces driver errors by its sentinels
// (DB-REFERENCE §8). On mysql it translates only 1062, 1451 and 1452, all
// NotRetryable as numbers too, so the verdict is the same; on postgres the
// sentinel wraps the *pgconn.PgError, which stays reachable. Retry codes
// are never translated. What TranslateError does lose on mysql is the
// *mysql.MySQLError itself: see the package documentation.
//
// The Classifier is safe for concurrent use. Classifier(nil) classifies as
// for an unknown dialector.
func Classifier(db *gorm.DB) dbop.Classifier {
	return classifierFor(dialectorName(db), nil)
}

// classifierFor returns the classifier for the named dialector; a non-nil
// backend replaces the one chosen from the name.
func classifierFor(dialector string, backend dbop.Classifier) dbop.Classifier {
	if backend == nil {
		switch dialector {
		case postgresDialect:
			backend = classifiers.Postgres
		case mysqlDialect:
			backend = classifiers.MySQL
		default:
			backend = classifiers.Default
		}
	}
	return dbop.FirstOf(gormErrors, backend, readOnlyWrite, classifiers.Network, classifiers.Context)
}

// gormErrors classifies GORM's sentinel errors, and sql.ErrTxDone.
func gormErrors(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	for _, target := range [...]error{
		gorm.ErrRecordNotFound,
		gorm.ErrDuplicatedKey,
		gorm.ErrForeignKeyViolated,
		gorm.ErrCheckConstraintViolated,
		gorm.ErrInvalidTransaction,
		gorm.ErrNotImplemented,
		gorm.ErrMissingWhereClause,
		gorm.ErrUnsupportedRelation,
		gorm.ErrPrimaryKeyRequired,
		gorm.ErrModelValueRequired,
		gorm.ErrModelAccessibleFieldsRequired,
		gorm.ErrSubQueryRequired,
		gorm.ErrInvalidData,
		gorm.ErrUnsupportedDriver,
		gorm.ErrRegistered,
		gorm.ErrInvalidField,
		gorm.ErrEmptySlice,
		gorm.ErrDryRunModeUnsupported,
		gorm.ErrInvalidDB,
		gorm.ErrInvalidValue,
		gorm.ErrInvalidValueOfLength,
		gorm.ErrPreloadNotAllowed,
		sql.ErrTxDone,
	} {
		if errors.Is(err, target) {
			return dbop.NotRetryable
		}
	}
	return dbop.Unclassified
}

// readOnlyWrite classifies a write refused because the transaction is read
// only. classifiers.Postgres and classifiers.MySQL leave these codes
// unclassified, which a retry would retry.
func readOnlyWrite(err error) dbop.Verdict {
	if se, ok := errors.AsType[interface {
		error
		SQLState() string
	}](err); ok && se.SQLState() == "25006" { // read_only_sql_transaction (PostgreSQL errcodes.txt)
		return dbop.NotRetryable
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok && me.Number == 1792 { // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
		return dbop.NotRetryable
	}
	return dbop.Unclassified
}
