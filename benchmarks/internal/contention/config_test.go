package contention

import (
	"context"

	"github.com/jackc/pgx/v5"
	"strings"
	"testing"
	"time"
)

// A stagger that would start a process after the others stopped, or with a
// fixed number of transfers (which ends the run at no set time), is refused
// before anything connects, naming what was wrong.
func TestRunRefusesAStaggerItCannotKeep(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative", Config{Processes: 2, Stagger: -time.Second, Duration: 10 * time.Second}, "stagger must not be negative"},
		{"past the end", Config{Processes: 3, Stagger: 5 * time.Second, Duration: 10 * time.Second}, "the last process would start 10s after the first"},
		{"with a number of transfers", Config{Processes: 2, Stagger: time.Second, Duration: 10 * time.Second, Transfers: 100}, "no -transfers"},
	} {
		c.cfg.Accounts, c.cfg.Workers = 4, 4
		_, err := Run(context.Background(), c.cfg, Strategy{Name: "test"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Run: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// pglock and pglease lock dbop.HotSpot's lock table on PostgreSQL: on
// another backend, or with the lock tables dropped, each is refused when
// named, saying why, and left out of the strategies a backend runs by
// default.
func TestPGLockRefusedWhereItCannotRun(t *testing.T) {
	for _, name := range []string{"pglock", "pglease"} {
		t.Run(name, func(t *testing.T) { lockStrategyRefused(t, name) })
	}
}

func lockStrategyRefused(t *testing.T, name string) {
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"mariadb", Config{Backend: Backend{Kind: MariaDB}}, "PostgreSQL only"},
		{"galera", Config{Backend: Backend{Kind: Galera}}, "PostgreSQL only"},
		{"no lock tables", Config{Backend: Backend{Kind: Postgres}, NoLockTables: true}, "-no-lock-tables drops"},
	} {
		_, err := StrategyByName(name, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: StrategyByName(%s): %v, want an error containing %q", c.name, name, err, c.want)
		}
	}
	if _, err := StrategyByName(name, Config{Backend: Backend{Kind: Postgres}}); err != nil {
		t.Errorf("postgres: StrategyByName(%s): %v", name, err)
	}
	for _, k := range Kinds {
		for _, noTables := range []bool{false, true} {
			cfg := Config{Backend: Backend{Kind: k}, NoLockTables: noTables, DBOP: Recommended}
			got := strings.Join(NamesFor(cfg), ",")
			if has := strings.Contains(got, name); has != (k == Postgres && !noTables) {
				t.Errorf("NamesFor(%s, no lock tables %t) = %s", k, noTables, got)
			}
			for _, name := range NamesFor(cfg) {
				if _, err := StrategyByName(name, cfg); err != nil {
					t.Errorf("NamesFor(%s, no lock tables %t) names %s, which it refuses: %v", k, noTables, name, err)
				}
			}
		}
	}
}

// pglock's BEGIN round trip: BEGIN at the backend's isolation level (none
// named when it has none), then the lock.
func TestPGLockBeginQuery(t *testing.T) {
	lock := "LOCK TABLE dbop_hotspot_lock_0 IN EXCLUSIVE MODE"
	for iso, want := range map[pgx.TxIsoLevel]string{
		pgx.Serializable:  "BEGIN ISOLATION LEVEL serializable; " + lock,
		pgx.ReadCommitted: "BEGIN ISOLATION LEVEL read committed; " + lock,
		"":                "BEGIN; " + lock,
	} {
		if got := pgLockBegin(iso, lock); got != want {
			t.Errorf("pgLockBegin(%q) = %q, want %q", iso, got, want)
		}
	}
}
