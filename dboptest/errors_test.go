package dboptest_test

import (
	"database/sql/driver"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/dbop-go/dbop/dboptest"
	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

func TestPgError(t *testing.T) {
	err := dboptest.PgError("40001", "could not serialize access due to concurrent update")
	want := &pgconn.PgError{
		Severity:            "ERROR",
		SeverityUnlocalized: "ERROR",
		Code:                "40001",
		Message:             "could not serialize access due to concurrent update",
	}
	if diff := cmp.Diff(want, err); diff != "" {
		t.Errorf("PgError (-want +got):\n%s", diff)
	}
	if got := err.SQLState(); got != "40001" {
		t.Errorf("SQLState() = %q, want 40001", got)
	}
	if got, want := err.Error(), "ERROR: could not serialize access due to concurrent update (SQLSTATE 40001)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestMySQLError(t *testing.T) {
	for _, tc := range []struct {
		name     string
		number   uint16
		sqlState string
	}{
		{"deadlock", 1213, "40001"},
		{"lock wait timeout", 1205, "HY000"},
		{"duplicate entry", 1062, "23000"},
		{"too many connections", 1040, "08004"},
		{"query interrupted", 1317, "70100"},
		{"mariadb statement timeout", 1969, "70100"},
		{"mysql query timeout", 3024, "HY000"},
		{"lock nowait", 3572, "HY000"},
		{"unknown", 9999, "HY000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := dboptest.MySQLError(tc.number, "message")
			want := &mysql.MySQLError{Number: tc.number, Message: "message"}
			copy(want.SQLState[:], tc.sqlState)
			if diff := cmp.Diff(want, err); diff != "" {
				t.Errorf("MySQLError(%d) (-want +got):\n%s", tc.number, diff)
			}
			// MySQLError.Is compares numbers, as the driver's own sentinels do.
			if !errors.Is(err, &mysql.MySQLError{Number: tc.number}) {
				t.Errorf("errors.Is by number failed for %d", tc.number)
			}
		})
	}
}

func TestTransportErrors(t *testing.T) {
	t.Run("network", func(t *testing.T) {
		err := dboptest.NetworkError()
		if _, ok := errors.AsType[*net.OpError](err); !ok {
			t.Errorf("NetworkError() = %T, want *net.OpError", err)
		}
		if _, ok := errors.AsType[net.Error](err); !ok {
			t.Errorf("NetworkError() does not implement net.Error")
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("NetworkError() does not match syscall.ECONNRESET: %v", err)
		}
	})
	t.Run("bad conn", func(t *testing.T) {
		if err := dboptest.BadConn(); !errors.Is(err, driver.ErrBadConn) {
			t.Errorf("BadConn() = %v, want driver.ErrBadConn", err)
		}
	})
	t.Run("invalid conn", func(t *testing.T) {
		if err := dboptest.InvalidConn(); !errors.Is(err, mysql.ErrInvalidConn) {
			t.Errorf("InvalidConn() = %v, want mysql.ErrInvalidConn", err)
		}
	})
}

func TestSQLiteErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		provoke func(testing.TB) error
		code    int
	}{
		{"busy", dboptest.SQLiteBusy, 5},
		{"busy snapshot", dboptest.SQLiteBusySnapshot, 517},
		{"locked", dboptest.SQLiteLocked, 6},
		{"constraint unique", dboptest.SQLiteConstraintUnique, 2067},
		{"constraint primary key", dboptest.SQLiteConstraintPrimaryKey, 1555},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.provoke(t)
			se, ok := errors.AsType[*sqlite.Error](err)
			if !ok {
				t.Fatalf("got %T (%v), want *sqlite.Error", err, err)
			}
			if diff := cmp.Diff(tc.code, se.Code()); diff != "" {
				t.Errorf("Code() (-want +got):\n%s", diff)
			}
			t.Logf("%d: %v", se.Code(), err)
		})
	}
}

// Each call provokes a fresh error: nothing is shared between calls.
func TestSQLiteErrorsAreFresh(t *testing.T) {
	a, b := dboptest.SQLiteBusy(t), dboptest.SQLiteBusy(t)
	if a == b {
		t.Errorf("two calls returned the same error value %p", a)
	}
}
