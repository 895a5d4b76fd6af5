package demo

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var testDSN = DSNVar{
	Name:    "DBOP_DEMO_TEST_DSN",
	What:    "a PostgreSQL connection string",
	Example: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
}

func TestDSNVarMessage(t *testing.T) {
	want := "set DBOP_DEMO_TEST_DSN to a PostgreSQL connection string, e.g.\n" +
		"\texport DBOP_DEMO_TEST_DSN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'"
	if diff := cmp.Diff(want, testDSN.Message()); diff != "" {
		t.Errorf("Message() (-want +got):\n%s", diff)
	}
}

func TestDSNVarGet(t *testing.T) {
	tests := []struct {
		name, value string
		wantOK      bool
		wantStderr  string
	}{
		{"set", "postgres://db", true, ""},
		{"empty", "", false, "pgx example: " + testDSN.Message() + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(testDSN.Name, tt.value)
			var stderr bytes.Buffer
			got, ok := testDSN.get(&stderr, "pgx example")
			if got != tt.value || ok != tt.wantOK {
				t.Errorf("get = %q, %v; want %q, %v", got, ok, tt.value, tt.wantOK)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("MustGet", func(t *testing.T) {
		t.Setenv(testDSN.Name, "postgres://db")
		if got := testDSN.MustGet("pgx example"); got != "postgres://db" {
			t.Errorf("MustGet = %q, want %q", got, "postgres://db")
		}
	})
}
