package contention

import (
	"context"
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
