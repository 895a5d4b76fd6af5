package gormdb_test

import (
	"errors"
	"testing"

	"github.com/dbop-go/dbop/internal/faultproxy"
	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"
)

// Outside a transaction, database/sql runs a statement again when the
// driver returns driver.ErrBadConn (docs/backends.md §10.1), which pgx's
// database/sql driver returns for every error whose SafeToRetry is true
// (§2.14). pgx v5.12.0 reports an answer lost after the statement was sent
// as "conn closed", with SafeToRetry true (§2.4). Together: an autocommit
// INSERT whose answer is lost is applied twice, and GORM reports success.
// This test shows it on a live server; the package documentation tells
// users to write inside InTx, where database/sql does not retry.
// go-sql-driver reports the same loss as mysql.ErrInvalidConn, which
// database/sql does not retry (§4.4).
func TestLiveAutocommitStatementAfterLostAnswer(t *testing.T) {
	for _, b := range []struct {
		name, table, columns string
		proxied              func(*testing.T) (*faultproxy.Proxy, *gorm.DB)
		open                 func(*testing.T, *gorm.Config) *gorm.DB
		wantRows             []string
		wantErr              error
	}{
		{"postgres: applied twice", "gormdb_autocommit_pg", "id serial PRIMARY KEY, n int NOT NULL",
			proxiedPostgres, livePostgres, []string{"1:1", "2:1"}, nil},
		{"mysql: reported", "gormdb_autocommit_my", "id int AUTO_INCREMENT PRIMARY KEY, n int NOT NULL",
			proxiedMySQL, liveMySQL, []string{"1:1"}, mysql.ErrInvalidConn},
	} {
		t.Run(b.name, func(t *testing.T) {
			admin := b.open(t, nil)
			createTable(t, admin, b.table, b.columns)
			p, db := b.proxied(t)
			exec(t, db, "SELECT 1") // a pooled connection, so the INSERT needs no handshake
			insert := "INSERT INTO " + b.table + " (n) VALUES (1)"
			p.CutAfter([]byte(insert))
			err := db.Exec(insert).Error
			if p.Cuts() != 1 {
				t.Fatalf("the proxy cut %d connections; want 1", p.Cuts())
			}
			if (err == nil) != (b.wantErr == nil) || !errors.Is(err, b.wantErr) {
				t.Errorf("Exec = %v; want %v", err, b.wantErr)
			}
			if diff := cmp.Diff(b.wantRows, queryRows(t, admin, b.table)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}
