package classifiers_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
)

// networkCases are the transport errors any driver passes up.
func networkCases(tb testing.TB) []verdictCase {
	return []verdictCase{
		{"driver.ErrBadConn", dboptest.BadConn(), dbop.RetryTransaction},
		{"ECONNRESET in *net.OpError", dboptest.NetworkError(), dbop.RetryTransaction},
		{"connection refused, real dial", refusedDial(tb), dbop.RetryTransaction},
		{"read on closed conn, real", closedRead(tb), dbop.RetryTransaction},
		{"net.ErrClosed", net.ErrClosed, dbop.RetryTransaction},
		{"io.ErrUnexpectedEOF", io.ErrUnexpectedEOF, dbop.RetryTransaction},
		{"ECONNREFUSED bare", syscall.ECONNREFUSED, dbop.RetryTransaction},
		{"ECONNABORTED", os.NewSyscallError("read", syscall.ECONNABORTED), dbop.RetryTransaction},
		{"EPIPE", os.NewSyscallError("write", syscall.EPIPE), dbop.RetryTransaction},
		{"os.ErrDeadlineExceeded", os.ErrDeadlineExceeded, dbop.RetryTransaction},
		{"DNS error", &net.DNSError{Err: "server misbehaving", Name: "db.internal", IsTemporary: true}, dbop.RetryTransaction},
	}
}

func TestNetwork(t *testing.T) {
	cases := append(networkCases(t),
		verdictCase{"io.EOF is not a network error", io.EOF, dbop.Unclassified},
		verdictCase{"context.DeadlineExceeded implements net.Error", context.DeadlineExceeded, dbop.RetryTransaction},
		verdictCase{"context.Canceled", context.Canceled, dbop.Unclassified},
		verdictCase{"mysql.ErrInvalidConn is MySQL's", dboptest.InvalidConn(), dbop.Unclassified},
		verdictCase{"server error", dboptest.PgError("40001", "could not serialize"), dbop.Unclassified},
		verdictCase{"plain error", errors.New("boom"), dbop.Unclassified},
	)
	checkVerdicts(t, "Network", classifiers.Network, cases)
}

// refusedDial returns the error of a real TCP dial to a loopback port that
// nothing listens on.
func refusedDial(tb testing.TB) error {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		tb.Fatalf("dial %s after closing its listener succeeded", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		tb.Fatalf("dial %s: got %v, want ECONNREFUSED", addr, err)
	}
	return err
}

// closedRead returns the error of a read on a loopback TCP connection this
// side has closed: a *net.OpError wrapping net.ErrClosed.
func closedRead(tb testing.TB) error {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	c.Close()
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, net.ErrClosed) {
		tb.Fatalf("read on a closed connection: got %v, want net.ErrClosed", err)
	}
	return err
}
