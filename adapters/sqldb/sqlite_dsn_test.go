package sqldb_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/sqldb"
)

func TestSQLiteDSN(t *testing.T) {
	tests := []struct {
		name, path string
		opts       []sqldb.SQLiteOption
		want       string
	}{
		{"defaults", "/data/app.db", nil,
			"file:/data/app.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"},
		{"relative path", "data/app.db", nil,
			"file:data/app.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"},
		{"path escaped", "/tmp/a b?#%.db", nil,
			"file:/tmp/a%20b%3F%23%25.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate"},
		{"options", "x.db", []sqldb.SQLiteOption{
			sqldb.SQLiteBusyTimeout(250 * time.Microsecond),
			sqldb.SQLiteJournalMode("delete"),
			sqldb.SQLiteTxLock("DEFERRED"),
			sqldb.SQLitePragma("foreign_keys(1)"),
			sqldb.SQLitePragma("cache_size(-2000)"),
		}, "file:x.db?_pragma=busy_timeout(1)&_pragma=journal_mode(DELETE)&_pragma=foreign_keys(1)&_pragma=cache_size(-2000)&_txlock=deferred"},
		{"zero timeout, no journal mode, no txlock", "x.db", []sqldb.SQLiteOption{
			sqldb.SQLiteBusyTimeout(0), sqldb.SQLiteJournalMode(""), sqldb.SQLiteTxLock(""),
		}, "file:x.db?_pragma=busy_timeout(0)"},
		{"pragma with a space", "x.db", []sqldb.SQLiteOption{sqldb.SQLitePragma("synchronous(NORMAL) ")},
			"file:x.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)+&_txlock=immediate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sqldb.SQLiteDSN(tt.path, tt.opts...); got != tt.want {
				t.Errorf("SQLiteDSN = %s\n                   want %s", got, tt.want)
			}
		})
	}
}

func TestSQLiteDSNPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"negative timeout": func() { sqldb.SQLiteBusyTimeout(-time.Second) },
		"journal mode":     func() { sqldb.SQLiteJournalMode("wall") },
		"txlock":           func() { sqldb.SQLiteTxLock("later") },
		"nil option":       func() { sqldb.SQLiteDSN("x.db", nil) },
	} {
		t.Run(name, func(t *testing.T) {
			if v, _ := mustPanic(t, f).(string); !strings.HasPrefix(v, "sqldb: ") {
				t.Errorf("panic %q", v)
			}
		})
	}
}
