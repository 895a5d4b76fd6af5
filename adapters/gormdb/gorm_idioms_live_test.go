package gormdb_test

// GORM's own idioms run inside InTx's function on live servers: nested
// tx.Transaction on handles derived from tx, statements whose .Error is
// never looked at, InTx given a handle already in a transaction, and
// gorm.Config.DefaultTransactionTimeout.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

// InTx and Do given a *gorm.DB already inside a transaction fail with
// gorm.ErrInvalidTransaction, NotRetryable, as documented, and begin
// nothing: the inner write is rolled back with the transaction it was
// written in. With a deadline on ctx the mysql dialector pins a connection
// for the attempt's session limits; that must not begin an independent
// transaction on another connection of the pool. The handle is GORM's own
// db.Transaction's, or the one an outer InTx hands its function.
func TestInTxOnATransactionFailsWithErrInvalidTransaction(t *testing.T) {
	for _, outer := range []string{"gorm.Transaction", "gormdb.InTx"} {
		for _, deadline := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/deadline=%v", outer, deadline), func(t *testing.T) {
				db := liveMySQL(t, nil)
				table := fmt.Sprintf("gormdb_intx_on_tx_%s_%v", strings.ReplaceAll(strings.ToLower(outer), ".", "_"), deadline)
				createTable(t, db, table, "id int PRIMARY KEY")
				ctx := t.Context()
				if deadline {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Minute)
					defer cancel()
				}
				errOuter := errors.New("the outer transaction fails: roll everything back")
				var innerErr error
				inside := func(tx *gorm.DB) error {
					inner := gormdb.Do(tx, func(ctx context.Context, tx2 *gorm.DB) error {
						return tx2.Exec("INSERT INTO " + table + " VALUES (1)").Error
					}, mariadb)
					_, innerErr = inner.Run(ctx)
					return errOuter
				}
				var outerErr error
				if outer == "gorm.Transaction" {
					outerErr = db.WithContext(ctx).Transaction(inside)
				} else {
					_, outerErr = gormdb.Do(db, func(_ context.Context, tx *gorm.DB) error { return inside(tx) }, mariadb).Run(ctx)
				}
				if !errors.Is(outerErr, errOuter) {
					t.Errorf("the outer transaction: %v; want %v", outerErr, errOuter)
				}
				if !errors.Is(innerErr, gorm.ErrInvalidTransaction) || dbop.VerdictOf(innerErr) != dbop.NotRetryable {
					t.Errorf("InTx on a transaction: %v (verdict %v); want gorm.ErrInvalidTransaction, NotRetryable", innerErr, dbop.VerdictOf(innerErr))
				}
				var n int64
				if err := db.Raw("SELECT COUNT(*) FROM " + table).Scan(&n).Error; err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%d row(s) committed although the transaction they were written in rolled back", n)
				}
			})
		}
	}
}

// GORM's Begin adds gorm.Config.DefaultTransactionTimeout to a context
// without a deadline, which is what InTx begins with (the caller's
// context without its cancellation): database/sql would then roll the
// transaction back by itself when GORM's timer fires, in the middle of the
// function or of its COMMIT, which InTx's detached context is there to
// prevent. A transaction that outlasts the timer (the function sleeps
// longer, once) commits once, at the first attempt.
func TestInTxIgnoresDefaultTransactionTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	db := livePostgres(t, &gorm.Config{DefaultTransactionTimeout: timeout})
	table := "gormdb_default_tx_timeout"
	createTable(t, db, table, "id int PRIMARY KEY")
	runs := 0
	op := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		runs++
		if err := tx.Exec("INSERT INTO " + table + " VALUES (1)").Error; err != nil {
			return err
		}
		time.Sleep(timeout + 100*time.Millisecond) // slow work in the application
		return tx.Exec("SELECT 1").Error
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := op.With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3))).Run(ctx)
	var n int64
	if e := db.Raw("SELECT COUNT(*) FROM " + table).Scan(&n).Error; e != nil {
		t.Fatal(e)
	}
	if err != nil || runs != 1 || n != 1 {
		t.Errorf("Run: %v (verdict %v) after %d runs, %d row(s); want success at the first run, one row",
			err, dbop.VerdictOf(err), runs, n)
	}
}
