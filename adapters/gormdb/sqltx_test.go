package gormdb_test

import (
	"context"
	"testing"

	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

// SQLTx finds the *sql.Tx under the handle InTx hands its function, and
// under the handles derived from it, on every dialector and under
// PrepareStmt, through the pool InTx watches the statements with (MySQL,
// MariaDB, SQLite) and GORM's PreparedStmtTX: a statement run on it runs in
// the transaction, between BEGIN and COMMIT. Outside a transaction it
// finds none.
func TestSQLTxFindsTheTransaction(t *testing.T) {
	for _, tc := range []struct {
		dialector string
		prepare   bool
		opts      []gormdb.TxOption
	}{
		{dialector: "postgres"},
		{dialector: "sqlite"},
		{dialector: "mysql", opts: []gormdb.TxOption{mariadb}},
		{dialector: "postgres", prepare: true},
		{dialector: "sqlite", prepare: true},
		{dialector: "mysql", prepare: true, opts: []gormdb.TxOption{mariadb}},
	} {
		name := tc.dialector
		if tc.prepare {
			name += ", PrepareStmt"
		}
		t.Run(name, func(t *testing.T) {
			db, f := fakeGORM(t, tc.dialector, &gorm.Config{PrepareStmt: tc.prepare})
			if sqlTx, ok := gormdb.SQLTx(db); ok || sqlTx != nil {
				t.Errorf("SQLTx(db) = %v, %v outside a transaction, want nil, false", sqlTx, ok)
			}
			_, err := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
				for _, h := range []*gorm.DB{tx, tx.WithContext(ctx), tx.Session(&gorm.Session{})} {
					sqlTx, ok := gormdb.SQLTx(h)
					if !ok || sqlTx == nil {
						t.Fatalf("SQLTx = %v, %v, want the transaction's *sql.Tx", sqlTx, ok)
					}
				}
				sqlTx, _ := gormdb.SQLTx(tx)
				_, err := sqlTx.ExecContext(ctx, "UPDATE t SET n = 1")
				return err
			}, tc.opts...).Run(t.Context())
			if err != nil {
				t.Fatalf("Run = %v", err)
			}
			checkLog(t, []string{"BEGIN", "UPDATE t SET n = 1", "COMMIT"}, f.Log())
		})
	}
}
