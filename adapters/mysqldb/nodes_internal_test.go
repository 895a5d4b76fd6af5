package mysqldb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
)

// nodeFailure's table: what moves the next attempt to another node.
func TestNodeFailure(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	var timeoutErr error = &dbop.TimeoutError{Timeout: time.Second, Err: context.DeadlineExceeded}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"1047 WSREP not ready", dboptest.MySQLError(1047, "WSREP has not yet prepared node for application use"), true},
		{"1040 too many connections", dboptest.MySQLError(1040, "Too many connections"), true},
		{"1053 server shutdown", dboptest.MySQLError(1053, "Server shutdown in progress"), true},
		{"connection refused", refused, true},
		{"connection reset", syscall.ECONNRESET, true},
		{"network error", dboptest.NetworkError(), true},
		{"driver.ErrBadConn", dboptest.BadConn(), true},
		{"mysql.ErrInvalidConn", dboptest.InvalidConn(), true},
		{"per-attempt deadline", timeoutErr, true},
		{"context deadline", context.DeadlineExceeded, true},
		{"1213 certification conflict", dboptest.MySQLError(1213, "Deadlock found when trying to get lock"), false},
		{"1205 lock wait timeout", dboptest.MySQLError(1205, "Lock wait timeout exceeded"), false},
		{"1062 duplicate entry", dboptest.MySQLError(1062, "Duplicate entry"), false},
		{"context canceled", context.Canceled, false},
		{"an error of the caller's", errors.New("insufficient funds"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forms := map[string]error{"bare": tc.err}
			if tc.err != nil {
				forms["wrapped"] = fmt.Errorf("transfer: %w", tc.err)
				forms["joined"] = errors.Join(errors.New("audit"), tc.err)
			}
			for form, err := range forms {
				if got := nodeFailure(err); got != tc.want {
					t.Errorf("%s: nodeFailure(%v) = %v, want %v", form, err, got, tc.want)
				}
			}
		})
	}
}
