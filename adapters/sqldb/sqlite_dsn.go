package sqldb

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// A SQLiteOption configures [SQLiteDSN].
type SQLiteOption func(*sqliteDSN)

type sqliteDSN struct {
	busyTimeout time.Duration
	journalMode string
	txLock      string
	pragmas     []string
}

// SQLiteDSN returns a modernc.org/sqlite data source name (for
// sql.Open("sqlite", …)) for the database file at path, with the settings
// that suit concurrent writers:
//
//   - busy_timeout 5s (as mattn/go-sqlite3's default), through
//     _pragma=busy_timeout(N), which every modernc version honours (the
//     _busy_timeout shorthand exists only since v1.55.0; docs/backends.md
//     §5.8);
//   - journal_mode WAL, so readers do not block the writer;
//   - _txlock=immediate, so a transaction takes the write lock at BEGIN.
//
// The last one matters for retries. database/sql cannot send BEGIN
// IMMEDIATE through BeginTx, and a deferred transaction that reads and then
// writes fails with SQLITE_BUSY_SNAPSHOT (517) when another connection wrote
// in between: at once, whatever busy_timeout says, and only a whole new
// transaction can succeed (docs/backends.md §5.3, §5.4). With _txlock=immediate
// writers queue at BEGIN, under busy_timeout, instead. Read-only transactions
// ([ReadOnly]) still begin with a plain BEGIN in modernc, so readers take no
// write lock.
//
// Options change the defaults. path is a file path; it is escaped into a
// file: URI.
func SQLiteDSN(path string, opts ...SQLiteOption) string {
	c := sqliteDSN{busyTimeout: 5 * time.Second, journalMode: "WAL", txLock: "immediate"}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("sqldb: SQLiteDSN: option %d of %d is nil", i+1, len(opts)))
		}
		o(&c)
	}
	var q []string
	q = append(q, "_pragma="+pragmaEscape("busy_timeout("+millisOrZero(c.busyTimeout)+")"))
	if c.journalMode != "" {
		q = append(q, "_pragma="+pragmaEscape("journal_mode("+c.journalMode+")"))
	}
	for _, p := range c.pragmas {
		q = append(q, "_pragma="+pragmaEscape(p))
	}
	if c.txLock != "" {
		q = append(q, "_txlock="+c.txLock)
	}

	p := filepath.ToSlash(path)
	if filepath.VolumeName(path) != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p // file:///C:/dir/db
	}
	return "file:" + (&url.URL{Path: p}).EscapedPath() + "?" + strings.Join(q, "&")
}

// SQLiteBusyTimeout sets busy_timeout, how long a statement waits for a lock
// another connection holds before failing with SQLITE_BUSY; milliseconds,
// rounded up. 0 fails at once. [LockTimeout] changes it per attempt. It
// panics if d < 0.
func SQLiteBusyTimeout(d time.Duration) SQLiteOption {
	if d < 0 {
		panic(fmt.Sprintf("sqldb: SQLiteBusyTimeout(%v): the timeout must not be negative", d))
	}
	return func(c *sqliteDSN) { c.busyTimeout = d }
}

// SQLiteJournalMode sets journal_mode: DELETE, TRUNCATE, PERSIST, MEMORY,
// WAL or OFF; "" leaves the database's own. It panics on another value.
func SQLiteJournalMode(mode string) SQLiteOption {
	switch strings.ToUpper(mode) {
	case "", "DELETE", "TRUNCATE", "PERSIST", "MEMORY", "WAL", "OFF":
	default:
		panic(fmt.Sprintf("sqldb: SQLiteJournalMode(%q): not a journal mode", mode))
	}
	return func(c *sqliteDSN) { c.journalMode = strings.ToUpper(mode) }
}

// SQLiteTxLock sets how BEGIN locks (modernc's _txlock): "deferred" (SQLite's
// own default), "immediate" or "exclusive"; "" leaves the driver's default
// (deferred). It panics on another value.
func SQLiteTxLock(mode string) SQLiteOption {
	switch strings.ToLower(mode) {
	case "", "deferred", "immediate", "exclusive":
	default:
		panic(fmt.Sprintf("sqldb: SQLiteTxLock(%q): want deferred, immediate or exclusive", mode))
	}
	return func(c *sqliteDSN) { c.txLock = strings.ToLower(mode) }
}

// SQLitePragma adds a PRAGMA the driver runs on every new connection,
// written as modernc's _pragma takes it: "foreign_keys(1)". The driver runs
// the text verbatim, so it must come from the program, never from input.
func SQLitePragma(pragma string) SQLiteOption {
	return func(c *sqliteDSN) { c.pragmas = append(c.pragmas, pragma) }
}

// millisOrZero is millis that keeps 0 as 0.
func millisOrZero(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return millis(d)
}

// pragmaEscape escapes a _pragma value for a URI query, keeping its
// parentheses readable.
func pragmaEscape(v string) string {
	r := strings.NewReplacer("%28", "(", "%29", ")")
	return r.Replace(url.QueryEscape(v))
}
