package gormdb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

// With gorm.Config{PrepareStmt: true}, the statement that sets an
// attempt's limits on PostgreSQL carries values derived from the time
// left, different at nearly every attempt: it runs below GORM's
// prepared-statement cache, as ResolveCommit's statements do, rather than
// being prepared (a round trip) and kept for a day each time. fn's own
// statements are still prepared and cached.
func TestLivePostgresAttemptLimitsBypassThePreparedStatementCache(t *testing.T) {
	db := livePostgres(t, &gorm.Config{PrepareStmt: true})
	var timeouts []string
	op := gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		var st string
		if err := tx.Raw("SELECT current_setting('statement_timeout')").Scan(&st).Error; err != nil {
			return err
		}
		timeouts = append(timeouts, st)
		return nil
	}, gormdb.LockTimeout(time.Minute))
	const runs = 5
	for i := range runs {
		if _, err := op.With(dbop.WithTimeout(time.Duration(2000+i*50) * time.Millisecond)).Run(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if len(timeouts) != runs || timeouts[0] == "0" {
		t.Fatalf("statement_timeout in the transactions: %v; want the limits derived from the deadlines (they were not set)", timeouts)
	}
	pool, ok := db.ConnPool.(*gorm.PreparedStmtDB)
	if !ok {
		t.Fatalf("db.ConnPool is %T; want *gorm.PreparedStmtDB", db.ConnPool)
	}
	var limits, fn int
	for _, k := range pool.Stmts.Keys() {
		switch {
		case strings.Contains(k, "set_config"):
			limits++
		case strings.Contains(k, "current_setting('statement_timeout')"):
			fn++
		}
	}
	if limits != 0 || fn != 1 {
		t.Errorf("GORM's cache holds %d statements setting the limits and %d of fn's; want 0 and 1 (PrepareStmt in effect)", limits, fn)
	}
}
