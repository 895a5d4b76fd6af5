package otel

// error.type of a Then's failure after a step committed names the step's
// error, not the mark dbop wraps it in (txmark.After has text of its own,
// so the generic look-through stopped at it).

import (
	"context"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

func TestErrorTypeOfAThenAfterACommit(t *testing.T) {
	var rec dboptest.Recorder
	myErr := dboptest.MySQLError(1062, "Duplicate entry")
	commitA := scopes.InTx(rec.Begin, func(ctx context.Context, tx *dboptest.Tx) (int, error) { return 1, tx.Exec(ctx, "INSERT A") })
	for _, c := range []struct {
		name  string
		cause error
		want  string
	}{
		{"mysql", myErr, errorType(myErr)},
		{"plain", plainError{}, errorType(plainError{})},
	} {
		_, err := dbop.Then(commitA, func(context.Context, int) (int, error) { return 0, c.cause }).
			With(dbop.WithRetry(dbop.Constant(0))).Run(t.Context())
		if got := errorType(err); got != c.want {
			t.Errorf("%s: error.type %q, want %q (as without the Then); err %v", c.name, got, c.want, err)
		}
	}
}
