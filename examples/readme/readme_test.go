package readme

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
	"github.com/dbop-go/dbop/scopes"
)

func TestTransferRetriesConflicts(t *testing.T) {
	deadlock := dboptest.PgError("40P01", "deadlock detected")
	conflict := dboptest.PgError("40001", "could not serialize access due to concurrent update")
	fake := dboptest.Script(int64(42), deadlock, conflict) // fails twice, then returns 42
	id, err := fake.Op().With(retried, dbop.ClassifyBy(pgxdb.Classifier)).Run(context.Background())
	if err != nil || id != 42 || fake.Calls() != 3 {
		t.Fatalf("got %d, %v after %d calls; want 42, nil after 3", id, err, fake.Calls())
	}

	duplicate := dboptest.PgError("23505", "duplicate key value violates unique constraint")
	fake = dboptest.Script(int64(0), duplicate)
	_, err = fake.Op().With(retried, dbop.ClassifyBy(pgxdb.Classifier)).Run(context.Background())
	if err != duplicate || fake.Calls() != 1 {
		t.Fatalf("got %v after %d calls; want the 23505 itself after 1", err, fake.Calls())
	}
}

func placeOrder(ctx context.Context, tx *dboptest.Tx) (int, error) {
	return 1, tx.Exec(ctx, "INSERT INTO orders")
}

func TestPlaceOrderRetriesDeadlocks(t *testing.T) {
	rec := &dboptest.Recorder{}
	rec.FailNext("INSERT INTO orders", dboptest.PgError("40P01", "deadlock detected"))
	op := scopes.InTx(rec.Begin, placeOrder, scopes.ClassifyBy(classifiers.Postgres))
	if _, err := op.With(dbop.WithRetry(dbop.Constant(0))).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"BEGIN", "INSERT INTO orders", "ROLLBACK", "BEGIN", "INSERT INTO orders", "COMMIT"}
	if diff := cmp.Diff(want, rec.Log()); diff != "" {
		t.Errorf("statements (-want +got):\n%s", diff)
	}
}

var goBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// normalize drops indentation and blank lines, which differ between a
// README block and the same code inside a function.
func normalize(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func TestReadmeCodeBlocks(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var compiled strings.Builder
	for _, name := range []string{"readme.go", "readme_test.go"} {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		compiled.WriteString(normalize(string(src)))
	}
	blocks := goBlock.FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d Go blocks in README.md; the pattern or the README changed", len(blocks))
	}
	for i, m := range blocks {
		if !strings.Contains(compiled.String(), normalize(m[1])) {
			t.Errorf("README Go block %d is not in examples/readme (copy it there so it compiles):\n%s", i+1, m[1])
		}
	}
}
