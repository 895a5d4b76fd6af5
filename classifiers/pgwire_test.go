package classifiers_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// pipeConn returns a pgx connection whose server is serve, talking the
// PostgreSQL protocol over an in-memory pipe, as if the startup were done.
// The errors that pgx returns on it are real pgx errors, not look-alikes.
// Cancel requests are not sent anywhere: dialling fails at once.
func pipeConn(t *testing.T, serve func(b *pgproto3.Backend, c net.Conn)) *pgconn.PgConn {
	t.Helper()
	cfg, err := pgconn.ParseConfig("postgres://app@127.0.0.1:5432/app")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DialFunc = func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("pipeConn: no dialling in tests")
	}
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	go serve(pgproto3.NewBackend(server, server), server)
	pc, err := pgconn.Construct(&pgconn.HijackedConn{
		Conn:              client,
		TxStatus:          'T',
		Frontend:          pgproto3.NewFrontend(client, client),
		Config:            cfg,
		ParameterStatuses: map[string]string{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// receiveRequest reads one simple query, or an extended-protocol request up
// to its Sync.
func receiveRequest(b *pgproto3.Backend) error {
	for {
		m, err := b.Receive()
		if err != nil {
			return err
		}
		switch m.(type) {
		case *pgproto3.Query, *pgproto3.Sync:
			return nil
		}
	}
}

// reply answers one request with msgs and then keeps reading until the
// client goes away.
func reply(msgs ...pgproto3.BackendMessage) func(*pgproto3.Backend, net.Conn) {
	return func(b *pgproto3.Backend, c net.Conn) {
		if receiveRequest(b) != nil {
			return
		}
		for _, m := range msgs {
			b.Send(m)
		}
		b.Flush()
		io.Copy(io.Discard, c)
	}
}

// dropAfter answers one request with msgs and then closes the connection.
func dropAfter(msgs ...pgproto3.BackendMessage) func(*pgproto3.Backend, net.Conn) {
	return func(b *pgproto3.Backend, c net.Conn) {
		if receiveRequest(b) != nil {
			return
		}
		for _, m := range msgs {
			b.Send(m)
		}
		b.Flush()
		c.Close()
	}
}

// silent reads everything and never answers.
func silent(_ *pgproto3.Backend, c net.Conn) { io.Copy(io.Discard, c) }

// pgxConnBusy returns the error pgx v5.12.0 gives a request on a
// connection still busy with another: pgconn's *connLockError with status
// "conn busy". The first query's results are never read (the server never
// answers), so the connection stays busy, as it does for a program that
// left a query's rows open.
func pgxConnBusy(t *testing.T) error {
	t.Helper()
	pc := pipeConn(t, silent)
	_ = pc.Exec(context.Background(), "select 1") // never read
	_, err := pc.Exec(context.Background(), "select 2").ReadAll()
	if err == nil {
		t.Fatal("pgxConnBusy: the second query on a busy connection succeeded")
	}
	return err
}

// pgxConnClosed returns the error pgx v5.12.0 gives a request on a
// connection it has closed: pgconn's *connLockError with status "conn
// closed", which unwraps to pgconn.ErrConnClosed.
func pgxConnClosed(t *testing.T) error {
	t.Helper()
	pc := pipeConn(t, silent)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pc.Close(ctx)
	_, err := pc.Exec(context.Background(), "select 1").ReadAll()
	if err == nil {
		t.Fatal("pgxConnClosed: a query on a closed connection succeeded")
	}
	return err
}

// "conn busy" is a bug in the program, which every attempt repeats: final,
// although pgx calls it safe to retry. "conn closed", which pgx builds the
// same way, stays RetryTransaction. Each case pins what pgx says about its
// error, so that a pgx upgrade that changes it fails here first.
func TestPgxConnBusy(t *testing.T) {
	type facts struct {
		Message     string
		SafeToRetry bool
		ConnClosed  bool
	}
	for _, tc := range []struct {
		name   string
		err    error
		facts  facts
		want   dbop.Verdict // of Postgres, CockroachDB and Default
		commit dbop.Verdict // of PostgresCommit
	}{
		{
			name:   "conn busy",
			err:    pgxConnBusy(t),
			facts:  facts{Message: "conn busy", SafeToRetry: true},
			want:   dbop.NotRetryable,
			commit: dbop.Unclassified, // not committed; classified as above
		},
		{
			name:   "conn closed",
			err:    pgxConnClosed(t),
			facts:  facts{Message: "conn closed", SafeToRetry: true, ConnClosed: true},
			want:   dbop.RetryTransaction,
			commit: dbop.Ambiguous,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := facts{
				Message:     tc.err.Error(),
				SafeToRetry: pgconn.SafeToRetry(tc.err),
				ConnClosed:  errors.Is(tc.err, pgconn.ErrConnClosed),
			}
			if diff := cmp.Diff(tc.facts, got); diff != "" {
				t.Errorf("pgx's view of %T %q changed (-want +got):\n%s", tc.err, tc.err, diff)
			}
			for _, c := range []namedClassifier{
				{"Postgres", classifiers.Postgres},
				{"CockroachDB", classifiers.CockroachDB},
				{"Default", classifiers.Default},
				{"PostgresCommit", classifiers.PostgresCommit},
			} {
				want := tc.want
				if c.name == "PostgresCommit" {
					want = tc.commit
				}
				checkVerdicts(t, c.name, c.classify, []verdictCase{{c.name, tc.err, want}})
			}
		})
	}
}

// The server's ErrorResponse reaches the classifier as a *pgconn.PgError.
func TestPgxServerErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		severity string
		code     string
		message  string
		want     dbop.Verdict
	}{
		{"40001", "ERROR", "40001", "could not serialize access due to concurrent update", dbop.RetryTransaction},
		{"55P03", "ERROR", "55P03", "canceling statement due to lock timeout", dbop.RetryStatement},
		{"57014 statement timeout", "ERROR", "57014", "canceling statement due to statement timeout", dbop.RetryStatement},
		{"57014 user request", "ERROR", "57014", "canceling statement due to user request", dbop.NotRetryable},
		{"23505", "ERROR", "23505", "duplicate key value violates unique constraint", dbop.NotRetryable},
		{"FATAL 57P01", "FATAL", "57P01", "terminating connection due to administrator command", dbop.RetryTransaction},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := pipeConn(t, reply(
				&pgproto3.ErrorResponse{Severity: tc.severity, SeverityUnlocalized: tc.severity, Code: tc.code, Message: tc.message},
				&pgproto3.ReadyForQuery{TxStatus: 'E'},
			))
			_, err := pc.Exec(context.Background(), "update accounts set balance = balance - 1").ReadAll()
			if _, ok := errors.AsType[*pgconn.PgError](err); !ok {
				t.Fatalf("got %T (%v), want *pgconn.PgError", err, err)
			}
			if diff := cmp.Diff(tc.want, classifiers.Default(err)); diff != "" {
				t.Errorf("Default(%v) (-want +got):\n%s", err, diff)
			}
		})
	}
}

// Transport failures as pgx v5.12.0 reports them. Each case also pins what
// pgx says about the error (SafeToRetry, Timeout, the wrapped sentinel), so
// that a pgx upgrade that changes it fails here first.
func TestPgxTransportErrors(t *testing.T) {
	type facts struct {
		SafeToRetry, Timeout, ConnClosed, Canceled, Deadline, UnexpectedEOF bool
	}
	for _, tc := range []struct {
		name   string
		run    func(t *testing.T) error
		facts  facts
		want   dbop.Verdict
		commit dbop.Verdict // of PostgresCommit, when set
	}{{
		name: "closed before send",
		run: func(t *testing.T) error {
			pc := pipeConn(t, silent)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			pc.Close(ctx)
			_, err := pc.Exec(context.Background(), "select 1").ReadAll()
			return err
		},
		facts: facts{SafeToRetry: true, ConnClosed: true},
		want:  dbop.RetryTransaction,
	}, {
		name: "context cancelled before send",
		run: func(t *testing.T) error {
			pc := pipeConn(t, silent)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := pc.Exec(ctx, "select 1").ReadAll()
			return err
		},
		// Nothing was sent, so pgx says it is safe to retry, and Postgres,
		// which Default asks before Context, agrees. The retry loop still
		// stops if the cancelled context was the caller's own.
		facts: facts{SafeToRetry: true, Timeout: true, Canceled: true},
		want:  dbop.RetryTransaction,
	}, {
		name: "deadline while waiting for the answer",
		run: func(t *testing.T) error {
			pc := pipeConn(t, silent)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			_, err := pc.Exec(ctx, "select pg_sleep(10)").ReadAll()
			return err
		},
		facts: facts{Timeout: true, Deadline: true},
		want:  dbop.RetryTransaction,
	}, {
		name: "cancel while waiting for the answer",
		run: func(t *testing.T) error {
			pc := pipeConn(t, silent)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			_, err := pc.Exec(ctx, "select pg_sleep(10)").ReadAll()
			return err
		},
		// pgx returns a bare context.Canceled (normalizeTimeoutError).
		facts: facts{Canceled: true},
		want:  dbop.NotRetryable,
	}, {
		name: "connection dropped after an extended-protocol request",
		run: func(t *testing.T) error {
			pc := pipeConn(t, dropAfter())
			return pc.ExecParams(context.Background(), "insert into t values ($1)", [][]byte{[]byte("1")}, nil, nil, nil).Read().Err
		},
		facts: facts{UnexpectedEOF: true},
		want:  dbop.RetryTransaction,
	}, {
		// ⚠ pgx v5.12.0: after a simple-protocol request (what Tx.Commit
		// sends) was written, a dropped connection comes back as "conn
		// closed" with SafeToRetry() == true, although the server got the
		// request. See the next case for why that matters at COMMIT.
		name: "connection dropped after a simple-protocol request",
		run: func(t *testing.T) error {
			pc := pipeConn(t, dropAfter())
			_, err := pc.Exec(context.Background(), "insert into t values (1)").ReadAll()
			return err
		},
		facts: facts{SafeToRetry: true, ConnClosed: true},
		want:  dbop.RetryTransaction,
	}, {
		// ⚠ pgx v5.12.0: the server committed (CommandComplete "COMMIT")
		// and the connection dropped before ReadyForQuery; pgx still says
		// SafeToRetry. A transaction scope must not read SafeToRetry on a
		// COMMIT error as "not committed" (docs/backends.md §2.4):
		// PostgresCommit, which cannot see pgconn.ErrConnClosed, calls
		// every SafeToRetry error at COMMIT ambiguous.
		name: "COMMIT done, connection dropped before ReadyForQuery",
		run: func(t *testing.T) error {
			pc := pipeConn(t, dropAfter(&pgproto3.CommandComplete{CommandTag: []byte("COMMIT")}))
			_, err := pc.Exec(context.Background(), "commit").ReadAll()
			return err
		},
		facts:  facts{SafeToRetry: true, ConnClosed: true},
		want:   dbop.RetryTransaction,
		commit: dbop.Ambiguous,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(t)
			if err == nil {
				t.Fatal("no error")
			}
			got := facts{
				SafeToRetry:   pgconn.SafeToRetry(err),
				Timeout:       pgconn.Timeout(err),
				ConnClosed:    errors.Is(err, pgconn.ErrConnClosed),
				Canceled:      errors.Is(err, context.Canceled),
				Deadline:      errors.Is(err, context.DeadlineExceeded),
				UnexpectedEOF: errors.Is(err, io.ErrUnexpectedEOF),
			}
			if diff := cmp.Diff(tc.facts, got); diff != "" {
				t.Errorf("pgx's view of %T %q changed (-want +got):\n%s", err, err, diff)
			}
			if diff := cmp.Diff(tc.want, classifiers.Default(err)); diff != "" {
				t.Errorf("Default(%v) (-want +got):\n%s", err, diff)
			}
			if tc.commit != dbop.Unclassified {
				if diff := cmp.Diff(tc.commit, classifiers.PostgresCommit(err)); diff != "" {
					t.Errorf("PostgresCommit(%v) (-want +got):\n%s", err, diff)
				}
			}
		})
	}
}
