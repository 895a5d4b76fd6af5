package demotest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dbop-go/dbop/examples/internal/demo"
)

var testDSN = demo.DSNVar{
	Name:    "DBOP_DEMO_TEST_DSN",
	What:    "a PostgreSQL connection string",
	Example: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
}

func TestWithout(t *testing.T) {
	env := []string{"A=1", "DBOP_DEMO_TEST_DSN=x", "DBOP_DEMO_TEST_DSN_2=y", "B="}
	want := []string{"A=1", "DBOP_DEMO_TEST_DSN_2=y", "B="}
	if diff := cmp.Diff(want, without(env, "DBOP_DEMO_TEST_DSN")); diff != "" {
		t.Errorf("without (-want +got):\n%s", diff)
	}
}

// TestCheckMainWithoutDSN runs CheckMainWithoutDSN on a main that only
// reads the variable, as the examples' mains do first.
func TestCheckMainWithoutDSN(t *testing.T) {
	CheckMainWithoutDSN(t, testDSN, func() { testDSN.MustGet("demo") })
}
