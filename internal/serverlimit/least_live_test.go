package serverlimit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dbop-go/dbop/internal/serverlimit"
	"github.com/dbop-go/dbop/internal/testdb"
	"github.com/jackc/pgx/v5"
)

// PostgresLeast on a live PostgreSQL server, for every form in which
// current_setting shows a timeout (docs/backends.md §1.18): the limit it
// leaves in force, read from pg_settings in milliseconds, is the smaller of
// the derived value and the value in force, the derived value where the
// value in force is 0, under each IntervalStyle (which changes how
// intervals are shown, not how they are read). The same statement, with
// current_setting replaced by a bare number, reads that number as
// milliseconds (CockroachDB's form, which PostgreSQL itself never shows).
func TestPostgresLeastLive(t *testing.T) {
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	inForce := []int64{0, 1, 150, 1500, 1950, 5000, 60000, 90000, 7200000, 86400000, 2147483647}
	derived := []int64{1, 10, 1950, 29950, 2147483647}
	styles := []string{"postgres", "iso_8601", "sql_standard", "postgres_verbose"}
	checked := 0
	for _, style := range styles {
		for _, cur := range inForce {
			for _, ms := range derived {
				want := ms
				if cur != 0 && cur < ms {
					want = cur
				}
				got, shown := setLeast(t, conn, style, cur, ms)
				if got != want {
					t.Errorf("IntervalStyle %s, lock_timeout in force %d ms (shown %q), derived %d ms: %d ms in force after, want %d",
						style, cur, shown, ms, got, want)
				}
				checked++
			}
		}
	}
	if want := len(styles) * len(inForce) * len(derived); checked != want {
		t.Fatalf("checked %d cases, want %d", checked, want)
	}

	// A bare number in force, as CockroachDB shows one: milliseconds.
	for _, c := range []struct {
		shown string
		ms    int64
		want  string
	}{
		{"100", 1950, "100"}, {"30000", 1950, "1950"}, {"1950", 1950, "1950"},
		{"0", 1950, "1950"}, {"100", 10, "10"},
	} {
		expr := strings.ReplaceAll(serverlimit.PostgresLeast("lock_timeout", c.ms), "current_setting('lock_timeout')", "'"+c.shown+"'::text")
		expr = strings.Replace(expr, "set_config('lock_timeout', ", "(", 1)
		expr = strings.TrimSuffix(expr, ", true)") + ")"
		var got string
		if err := conn.QueryRow(ctx, "SELECT "+expr).Scan(&got); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got != c.want {
			t.Errorf("bare %q in force, derived %d ms: sets %q, want %q", c.shown, c.ms, got, c.want)
		}
	}
}

// setLeast sets lock_timeout to cur for the session under IntervalStyle
// style, runs PostgresLeast with ms in a transaction and returns the value
// it left in force there (pg_settings, milliseconds) and the text
// current_setting showed before it.
func setLeast(t *testing.T, conn *pgx.Conn, style string, cur, ms int64) (int64, string) {
	t.Helper()
	ctx := t.Context()
	for _, q := range []string{
		"SET IntervalStyle = " + style,
		fmt.Sprintf("SET lock_timeout = %d", cur),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var shown string
	if err := conn.QueryRow(ctx, "SELECT current_setting('lock_timeout')").Scan(&shown); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, serverlimit.PostgresSelect([]string{serverlimit.PostgresLeast("lock_timeout", ms)})); err != nil {
		t.Fatalf("lock_timeout %s, derived %d: %v", shown, ms, err)
	}
	var got int64
	if err := tx.QueryRow(ctx, "SELECT setting::bigint FROM pg_settings WHERE name = 'lock_timeout'").Scan(&got); err != nil {
		t.Fatal(err)
	}
	return got, shown
}

// A derived value above 2^31-1 ms, the most statement_timeout and
// lock_timeout take (a deadline more than about 24.8 days away), leaves
// 2^31-1 where 0 is in force and the value in force otherwise, without
// an error: set_config('lock_timeout', '2147483648', true) fails with
// 22023, and the BEGIN round trip with it (docs/backends.md §1.18). The
// numeric form's LEAST(…, 2147483647) capped it; the first interval form
// did not (found by a review).
func TestPostgresLeastLiveAboveTheMaximum(t *testing.T) {
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, testdb.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	checked := 0
	for _, cur := range []int64{0, 150, 86400000, 2147483647} {
		for _, ms := range []int64{2147483648, 30 * 24 * 3600 * 1000, 1 << 40} {
			want := int64(2147483647)
			if cur != 0 {
				want = cur
			}
			if got, shown := setLeast(t, conn, "postgres", cur, ms); got != want {
				t.Errorf("lock_timeout in force %d ms (shown %q), derived %d ms: %d ms in force after, want %d", cur, shown, ms, got, want)
			}
			checked++
		}
	}
	if checked != 12 {
		t.Fatalf("checked %d cases, want 12", checked)
	}
}
