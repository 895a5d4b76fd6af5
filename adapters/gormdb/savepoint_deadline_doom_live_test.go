package gormdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"gorm.io/gorm"
)

// A savepoint step whose attempt carries a deadline runs between the
// statements that set the server limits derived from it and set them back.
// MariaDB's deadlock ends the whole transaction, and the restore goes out
// after it: a session setting, no write, which InTx's pool must not count
// as the function going on past the doom. The 1213 reaches the retry
// around InTx, which runs the transaction again, and every write lands
// once; taken for going on, the restore would make the run Ambiguous and
// stop it after one attempt.
func TestSavepointStepDeadlineRestoredAfterADeadlockIsNotGoingOn(t *testing.T) {
	s := newGcmpScene(t, "spdeadline_doom", gcmpDeadlock)
	var inner, outer gcmpRecorder
	attempts := 0
	op := gormdb.InTx(s.db, func(ctx context.Context, tx *gorm.DB) (int, error) {
		attempts++
		if err := s.write(ctx, tx, "A"); err != nil {
			return 0, err
		}
		step := s.step(tx).With(s.retry(&inner), dbop.WithTimeout(time.Minute), gormdb.InSavepoint(tx, mariadb))
		if _, err := step.Run(ctx); err != nil {
			return 0, err
		}
		return attempts, s.write(ctx, tx, "C")
	}, mariadb)
	var n int
	err := s.run(t, func(ctx context.Context) (err error) {
		n, err = op.With(s.retry(&outer)).Run(ctx)
		return err
	})
	if err != nil || n != 2 {
		t.Errorf("Run = %d, %v (%v); want 2, nil: the 1213 retried around InTx", n, err, dbop.VerdictOf(err))
	}
	s.check(t, "A", "step", "C")
	if got := inner.all(); len(got) != 0 {
		t.Errorf("the retry around the savepoint retried %v; a deadlock must reach InTx's retry", got)
	}
	outer.want(t, 1, 1213, dbop.RetryTransaction)
}
