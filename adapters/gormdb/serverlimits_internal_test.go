package gormdb

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/sqldialect"
)

// A dbop.HotSpot's bound limits lock waits on PostgreSQL (lock_timeout);
// statements keep the limit of the context's deadline. MySQL and MariaDB,
// whose limit covers both, get the smaller.
func TestServerLimitsUnderAHotSpotBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Millisecond)
		defer cancel()
		ctx = hotlock.WithServerDeadline(ctx, time.Now().Add(5*time.Millisecond))

		pg := &beginner{family: sqldialect.Postgres}
		want := "SELECT set_config('lock_timeout', '5ms', true), set_config('statement_timeout', '54ms', true)"
		if got, _, _ := pg.serverLimits(ctx); got != want {
			t.Errorf("PostgreSQL: %q, want %q", got, want)
		}
		maria := &beginner{family: sqldialect.MariaDB}
		if _, set, _ := maria.serverLimits(ctx); set != "SET @dbop_saved_max_statement_time = @@SESSION.max_statement_time, @@SESSION.max_statement_time = 0.005000" {
			t.Errorf("MariaDB: %q, want max_statement_time 0.005000", set)
		}
	})
}
