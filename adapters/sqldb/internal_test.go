package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/serverlimit"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/internal/testdb"
	_ "modernc.org/sqlite"
)

// mySQL and mariaDB stand in for github.com/dbop-go/dbop/adapters/mysqldb's
// dialects, which import this package: what is tested here depends only on
// their family.
var (
	mySQL   = Dialect{Name: "mysql", Family: sqldialect.MySQL, Classify: Postgres.Classify, CommitOutcome: Postgres.CommitOutcome}
	mariaDB = Dialect{Name: "mariadb", Family: sqldialect.MariaDB, Classify: Postgres.Classify, CommitOutcome: Postgres.CommitOutcome}
)

// Timeouts are rounded up, never to 0 (which disables them), and capped.
func TestTimeoutFormatting(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"millis exact", millis(250 * time.Millisecond), "250"},
		{"millis rounds up", millis(1500 * time.Microsecond), "2"},
		{"millis never 0", millis(time.Nanosecond), "1"},
		{"millis capped", millis(1 << 62), "2147483647"},
		{"lock wait exact", lockWaitSeconds(3 * time.Second), "3"},
		{"lock wait rounds up", lockWaitSeconds(1200 * time.Millisecond), "2"},
		{"lock wait at least 1", lockWaitSeconds(time.Millisecond), "1"},
		{"lock wait capped", lockWaitSeconds(1 << 62), "1073741824"},
		{"statement seconds", statementSeconds(1500 * time.Millisecond), "1.500000"},
		{"statement seconds rounds up", statementSeconds(1500 * time.Nanosecond), "0.000002"},
		{"statement seconds capped", statementSeconds(1 << 62), "31536000.000000"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}

// The statements each dialect runs for its per-attempt timeouts: on MySQL
// and MariaDB one SET saves the old values in user variables and sets the
// new ones, and one SET puts the old ones back; SQLite reads, then sets.
func TestTimeoutStatements(t *testing.T) {
	both := &config{lockTimeout: 2 * time.Second, statementTimeout: 300 * time.Millisecond}
	tests := []struct {
		d                      Dialect
		c                      *config
		local, read, set, rest string
	}{
		{Postgres, both, "SET LOCAL lock_timeout = 2000; SET LOCAL statement_timeout = 300", "", "", ""},
		{Postgres, &config{statementTimeout: time.Second}, "SET LOCAL statement_timeout = 1000", "", "", ""},
		{mySQL, both, "", "",
			"SET @dbop_saved_innodb_lock_wait_timeout = @@SESSION.innodb_lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout = 2, " +
				"@dbop_saved_max_execution_time = @@SESSION.max_execution_time, @@SESSION.max_execution_time = 300",
			"SET @@SESSION.innodb_lock_wait_timeout = @dbop_saved_innodb_lock_wait_timeout, @dbop_saved_innodb_lock_wait_timeout = NULL, " +
				"@@SESSION.max_execution_time = @dbop_saved_max_execution_time, @dbop_saved_max_execution_time = NULL"},
		{mariaDB, both, "", "",
			"SET @dbop_saved_innodb_lock_wait_timeout = @@SESSION.innodb_lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout = 2, " +
				"@dbop_saved_max_statement_time = @@SESSION.max_statement_time, @@SESSION.max_statement_time = 0.300000",
			"SET @@SESSION.innodb_lock_wait_timeout = @dbop_saved_innodb_lock_wait_timeout, @dbop_saved_innodb_lock_wait_timeout = NULL, " +
				"@@SESSION.max_statement_time = @dbop_saved_max_statement_time, @dbop_saved_max_statement_time = NULL"},
		{SQLite, &config{lockTimeout: 20 * time.Millisecond}, "", "PRAGMA busy_timeout", "PRAGMA busy_timeout = 20", ""},
		{mariaDB, &config{}, "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			got := newTimeouts("InTx", tt.d, tt.c)
			if got.local != tt.local {
				t.Errorf("local = %q, want %q", got.local, tt.local)
			}
			if tt.set == "" {
				if got.session != nil {
					t.Errorf("session = %+v, want none", got.session)
				}
				return
			}
			if got.session.read != tt.read || got.session.set != tt.set || got.session.restore != tt.rest {
				t.Errorf("read, set, restore = %q, %q, %q;\nwant %q, %q, %q",
					got.session.read, got.session.set, got.session.restore, tt.read, tt.set, tt.rest)
			}
		})
	}
}

// pgLeast is the set_config call that sets the PostgreSQL parameter name to
// the least of ms and the value in force (0 in force: ms).
func pgLeast(name, ms string) string {
	return "set_config('" + name + "', CASE WHEN current_setting('" + name + "') = '0' OR (current_setting('" + name + "') || CASE WHEN strpos('0123456789', right(current_setting('" + name + "'), 1)) > 0 THEN 'ms' ELSE '' END)::interval > '" + ms + "ms' THEN '" + ms + "' ELSE current_setting('" + name + "') END, true)"
}

// myLeast is the expression that sets the MySQL or MariaDB session
// variable name to the least of value and the value in force (0 in force:
// value).
func myLeast(name, value string) string {
	return "IF(@@SESSION." + name + " = 0, " + value + ", LEAST(@@SESSION." + name + ", " + value + "))"
}

// With a deadline on the context, each attempt lowers the limits to the
// time left less the margin: PostgreSQL's statement_timeout and
// lock_timeout, MariaDB's max_statement_time, MySQL's max_execution_time
// and, in whole seconds rounded down, innodb_lock_wait_timeout; nothing on
// SQLite. A limit given is set to the smaller of the given and the derived
// value, plainly; one not given to the least of the derived value and the
// value in force, which the server computes, so that a lower default is
// never raised.
func TestTimeoutsFromDeadline(t *testing.T) {
	tests := []struct {
		name    string
		d       Dialect
		c       *config
		timeout time.Duration
		bound   time.Duration // a dbop.HotSpot's server deadline; 0: none
		local   string
		set     string
	}{
		{name: "postgres", d: Postgres, c: &config{}, timeout: 2 * time.Second,
			local: "SELECT " + pgLeast("lock_timeout", "1950") + ", " + pgLeast("statement_timeout", "1950")},
		{name: "postgres, smaller lock timeout given, larger statement timeout lowered", d: Postgres,
			c: &config{lockTimeout: 100 * time.Millisecond, statementTimeout: time.Minute}, timeout: 2 * time.Second,
			local: "SET LOCAL lock_timeout = 100; SET LOCAL statement_timeout = 1950"},
		{name: "postgres, statement timeout given", d: Postgres, c: &config{statementTimeout: 300 * time.Millisecond}, timeout: 2 * time.Second,
			local: "SET LOCAL statement_timeout = 300; SELECT " + pgLeast("lock_timeout", "1950")},
		{name: "postgres, a HotSpot's bound limits lock waits only", d: Postgres, c: &config{}, timeout: 60 * time.Millisecond, bound: 5 * time.Millisecond,
			local: "SELECT " + pgLeast("lock_timeout", "5") + ", " + pgLeast("statement_timeout", "54")},
		{name: "mariadb, a HotSpot's bound limits everything", d: mariaDB, c: &config{}, timeout: 60 * time.Millisecond, bound: 5 * time.Millisecond,
			set: "SET @dbop_saved_max_statement_time = @@SESSION.max_statement_time, @@SESSION.max_statement_time = " + myLeast("max_statement_time", "0.005000")},
		{name: "mariadb", d: mariaDB, c: &config{}, timeout: 300 * time.Millisecond,
			set: "SET @dbop_saved_max_statement_time = @@SESSION.max_statement_time, @@SESSION.max_statement_time = " + myLeast("max_statement_time", "0.270000")},
		{name: "mariadb, lock timeout given", d: mariaDB, c: &config{lockTimeout: time.Second}, timeout: 300 * time.Millisecond,
			set: "SET @dbop_saved_innodb_lock_wait_timeout = @@SESSION.innodb_lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout = 1, " +
				"@dbop_saved_max_statement_time = @@SESSION.max_statement_time, @@SESSION.max_statement_time = " + myLeast("max_statement_time", "0.270000")},
		{name: "mariadb, statement timeout given", d: mariaDB, c: &config{statementTimeout: time.Minute}, timeout: 300 * time.Millisecond,
			set: "SET @dbop_saved_max_statement_time = @@SESSION.max_statement_time, @@SESSION.max_statement_time = 0.270000"},
		{name: "mysql, under a second", d: mySQL, c: &config{}, timeout: 300 * time.Millisecond,
			set: "SET @dbop_saved_max_execution_time = @@SESSION.max_execution_time, @@SESSION.max_execution_time = " + myLeast("max_execution_time", "270")},
		{name: "mysql, seconds", d: mySQL, c: &config{lockTimeout: 10 * time.Second}, timeout: 2500 * time.Millisecond,
			set: "SET @dbop_saved_innodb_lock_wait_timeout = @@SESSION.innodb_lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout = 2, " +
				"@dbop_saved_max_execution_time = @@SESSION.max_execution_time, @@SESSION.max_execution_time = " + myLeast("max_execution_time", "2450")},
		{name: "mysql, seconds, no lock timeout given", d: mySQL, c: &config{statementTimeout: 100 * time.Millisecond}, timeout: 2500 * time.Millisecond,
			set: "SET @dbop_saved_innodb_lock_wait_timeout = @@SESSION.innodb_lock_wait_timeout, " +
				"@@SESSION.innodb_lock_wait_timeout = LEAST(@@SESSION.innodb_lock_wait_timeout, 2), " +
				"@dbop_saved_max_execution_time = @@SESSION.max_execution_time, @@SESSION.max_execution_time = 100"},
		{name: "sqlite", d: SQLite, c: &config{}, timeout: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
				defer cancel()
				if tt.bound > 0 {
					ctx = hotlock.WithServerDeadline(ctx, time.Now().Add(tt.bound))
				}
				local, limits, s := newTimeouts("InTx", tt.d, tt.c).attempt(ctx)
				local = serverlimit.Join(local, limits) // one round trip, the SELECT last
				set := ""
				if s != nil {
					set = s.set
				}
				if local != tt.local || set != tt.set {
					t.Errorf("attempt = %q, %q;\nwant %q, %q", local, set, tt.local, tt.set)
				}
			})
		})
	}
}

// SQLite's busy_timeout, read from the server, is written back as a plain
// decimal number; anything else is refused.
func TestRestoreValues(t *testing.T) {
	s := newTimeouts("InTx", SQLite, &config{lockTimeout: time.Second}).session
	for _, v := range []string{"", "1; DROP TABLE x", "-1", "1.2.3", "NaN", "Inf", "0x10"} {
		if got, err := s.restoreSQL([]string{v}); err == nil {
			t.Errorf("restoreSQL(%q) = %q, want an error", v, got)
		}
	}
	for v, want := range map[string]string{
		"0":     "0",
		"5000":  "5000",
		"1e+03": "1000",
	} {
		got, err := s.restoreSQL([]string{v})
		if want := "PRAGMA busy_timeout = " + want; got != want || err != nil {
			t.Errorf("restoreSQL(%q) = %q, %v; want %q", v, got, err, want)
		}
	}
	if _, err := s.restoreSQL([]string{"1", "2"}); err == nil {
		t.Error("restoreSQL accepted two values for one setting")
	}
}

func TestQuote(t *testing.T) {
	for _, tt := range []struct {
		d          Dialect
		name, want string
	}{
		{Postgres, "dbop_sp_1", `"dbop_sp_1"`},
		{SQLite, `a"b`, `"a""b"`},
		{mySQL, "dbop_sp_1", "`dbop_sp_1`"},
		{mariaDB, "a`b", "`a``b`"},
	} {
		if got := quote(tt.d.Family, tt.name); got != tt.want {
			t.Errorf("quote(%v, %q) = %s, want %s", tt.d.Family, tt.name, got, tt.want)
		}
	}
}

// database/sql's Tx.Commit never sends COMMIT once its context is done
// (sql.go): such errors are marked not sent; a transaction fn ended itself
// is reported as such, its outcome unknown.
func TestCommitError(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("attempt timed out")
	cancel(cause)

	// The awaitDone goroutine rolled back: ErrTxDone, context done.
	err := commitError(done, nil, sql.ErrTxDone)
	if _, ok := errors.AsType[*notSentError](err); !ok || !errors.Is(err, cause) || !errors.Is(err, sql.ErrTxDone) {
		t.Errorf("ErrTxDone after the context ended: %v, want not sent, with the cause", err)
	}
	if v := commitOutcome(Postgres.CommitOutcome)(err); v != dbop.Unclassified {
		t.Errorf("outcome %v, want unclassified (not committed)", v)
	}
	// The context was done before Commit: database/sql returned ctx.Err().
	err = commitError(done, context.Canceled, context.Canceled)
	if _, ok := errors.AsType[*notSentError](err); !ok {
		t.Errorf("ctx error with the context done before Commit: %v, want not sent", err)
	}
	// The context ended during Commit: the driver's answer, judged as such.
	if err := commitError(done, nil, context.Canceled); err != context.Canceled {
		t.Errorf("ctx error during Commit: %v, want it unchanged", err)
	}
	// fn ended the transaction, maybe committing it.
	err = commitError(live, nil, sql.ErrTxDone)
	if !errors.Is(err, errEndedInFn) || commitOutcome(Postgres.CommitOutcome)(err) != dbop.Ambiguous {
		t.Errorf("ErrTxDone with a live context: %v, want errEndedInFn, ambiguous", err)
	}
	// Any other error is left to the dialect.
	other := fmt.Errorf("x")
	if err := commitError(live, nil, other); err != other {
		t.Errorf("got %v, want it unchanged", err)
	}
}

// When the restore fails, release makes database/sql discard the
// connection: with a real driver, the pool then holds no connection, and the
// next one is new (its TEMP tables are gone and busy_timeout is the DSN's).
// This is what Conn.Raw returning driver.ErrBadConn does in Go 1.26
// (sql.go: Conn.Raw → Conn.closemuRUnlockCondReleaseConn → DB.putConn).
func TestReleaseDiscardsOnFailedRestore(t *testing.T) {
	ctx := t.Context()
	db, err := sql.Open("sqlite", SQLiteDSN(testdb.SQLiteFile(t), SQLiteBusyTimeout(4321*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE sqldb_marker (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	s := newTimeouts("InTx", SQLite, &config{lockTimeout: 25 * time.Millisecond}).session
	p, err := pin(ctx, poolSource{db}, s, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got int
	if err := p.conn.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&got); err != nil || got != 25 {
		t.Fatalf("pinned busy_timeout = %d, %v; want 25", got, err)
	}
	p.restore = "PRAGMA busy_timeout = " // a restore that fails
	p.release(ctx)

	if n := db.Stats().OpenConnections; n != 0 {
		t.Errorf("%d open connections, want 0: the connection was pooled", n)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&got); err != nil || got != 4321 {
		t.Errorf("busy_timeout on the next connection = %d, %v; want 4321", got, err)
	}
	if _, err := db.ExecContext(ctx, "SELECT * FROM temp.sqldb_marker"); err == nil {
		t.Error("the TEMP table survived: the same connection came back")
	}
}
