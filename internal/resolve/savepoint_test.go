package resolve

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/dbop-go/dbop/internal/sqldialect"
	"github.com/dbop-go/dbop/internal/txmark"
)

// A step derives a limit only from a deadline of its own earlier than the
// one the transaction's owner derived its limits from, never from a
// HotSpot's server deadline alone.
func TestStepLimit(t *testing.T) {
	owner := new(txmark.State)
	owner.SetOwned()
	owner.SetLimitsDeadline(time.Now().Add(10 * time.Second))
	inOwner := txmark.WithState(context.Background(), owner)
	// InTx without a deadline: any deadline of the step's is its own.
	bare := new(txmark.State)
	bare.SetOwned()
	inBare := txmark.WithState(context.Background(), bare)
	at := func(ctx context.Context, d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(ctx, d)
		t.Cleanup(cancel)
		return ctx
	}
	server := hotlock.WithServerDeadline(context.Background(), time.Now().Add(time.Millisecond))
	tests := []struct {
		name string
		ctx  context.Context
		ok   bool
	}{
		{"no deadline", context.Background(), false},
		{"HotSpot server deadline alone", server, false},
		{"outside any owner, the caller's deadline", at(context.Background(), 5*time.Second), false},
		{"outside any owner, a WithTimeout's", txmark.WithAttemptDeadline(at(context.Background(), 5*time.Second)), true},
		{"outside any owner, an earlier deadline inside a WithTimeout's", at(txmark.WithAttemptDeadline(at(context.Background(), time.Minute)), 5*time.Second), false},
		{"owner's deadline", at(inOwner, time.Minute), false},
		{"earlier than the owner's", at(inOwner, 5*time.Second), true},
		{"in an owner's without a deadline", at(inBare, 5*time.Second), true},
		{"earlier, under a HotSpot's server deadline", at(hotlock.WithServerDeadline(inOwner, time.Now()), 5*time.Second), true},
	}
	for _, tt := range tests {
		limit, ok := StepLimit(tt.ctx)
		if ok != tt.ok || (ok && (limit < 4*time.Second || limit >= 5*time.Second)) {
			t.Errorf("%s: StepLimit = %v, %v; want ok %v (a limit under 5s, not from the server deadline)", tt.name, limit, ok, tt.ok)
		}
	}
}

// Without a step deadline earlier than the owner's, SavepointLimits only
// calls next: no statement, no allocation.
func TestSavepointLimitsWithoutDeadlineCostsNothing(t *testing.T) {
	owner := new(txmark.State)
	owner.SetOwned()
	owner.SetLimitsDeadline(time.Now().Add(time.Hour))
	ctx, cancel := context.WithTimeout(txmark.WithState(context.Background(), owner), 2*time.Hour)
	defer cancel()
	sent := 0
	tx := SavepointTx{
		Exec:  func(context.Context, string) error { sent++; return nil },
		Query: func(context.Context, string, ...any) ([]string, error) { sent++; return nil, nil },
	}
	next := func(context.Context) error { return nil }
	for _, fam := range []sqldialect.Family{sqldialect.Postgres, sqldialect.MariaDB, sqldialect.MySQL} {
		allocs := testing.AllocsPerRun(100, func() {
			if err := SavepointLimits(ctx, fam, tx, time.Second, next); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 || sent != 0 {
			t.Errorf("%v: %v allocations, %d statements; want none", fam, allocs, sent)
		}
	}
}

func TestSavepointSQL(t *testing.T) {
	got := PostgresSwapSQL([]string{"lock_timeout", "statement_timeout"}, []bool{false, true}, nil)
	for _, want := range []string{
		"(1, 'lock_timeout', $1::text)",
		"(2, 'statement_timeout', LEAST(COALESCE(NULLIF(CASE WHEN translate(current_setting('statement_timeout'), '0123456789', '') = '' THEN current_setting('statement_timeout')::numeric ELSE EXTRACT(EPOCH FROM current_setting('statement_timeout')::interval) * 1000 END, 0), 2147483647), $2::numeric)::bigint::text)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("PostgresSwapSQL:\n%s\nlacks %s", got, want)
		}
	}
	set, restore := MySQLSavepointLimits(true, 1500*time.Millisecond, "sp2_")
	if want := "SET @dbop_saved_sp2_max_statement_time = @@SESSION.max_statement_time, @@SESSION.max_statement_time = IF(@@SESSION.max_statement_time = 0, 1.500000, LEAST(@@SESSION.max_statement_time, 1.500000))"; set != want {
		t.Errorf("set\n%s\nwant\n%s", set, want)
	}
	if want := "SET @@SESSION.max_statement_time = @dbop_saved_sp2_max_statement_time, @dbop_saved_sp2_max_statement_time = NULL"; restore != want {
		t.Errorf("restore\n%s\nwant\n%s", restore, want)
	}
	set, restore = MySQLSavepointLimits(false, 2500*time.Millisecond, "sp1_")
	if want := "SET @dbop_saved_sp1_innodb_lock_wait_timeout = @@SESSION.innodb_lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout = LEAST(@@SESSION.innodb_lock_wait_timeout, 2), @dbop_saved_sp1_max_execution_time = @@SESSION.max_execution_time, @@SESSION.max_execution_time = IF(@@SESSION.max_execution_time = 0, 2500, LEAST(@@SESSION.max_execution_time, 2500))"; set != want {
		t.Errorf("set\n%s\nwant\n%s", set, want)
	}
	if !IsMySQLSavepointLimits(set) || !IsMySQLSavepointLimits(restore) {
		t.Error("IsMySQLSavepointLimits does not recognise a savepoint's statements")
	}
	// InTx's own session limits are not a savepoint's: they count.
	txSet, txRestore := MySQLSessionLimits(true, time.Second)
	if IsMySQLSavepointLimits(txSet) || IsMySQLSavepointLimits(txRestore) || IsMySQLSavepointLimits("SET @@SESSION.sql_mode = ''") {
		t.Error("IsMySQLSavepointLimits recognises statements that are not a savepoint's")
	}
}
