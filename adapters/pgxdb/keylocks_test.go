package pgxdb_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/dbop-go/dbop/internal/hotlock"
	"github.com/jackc/pgx/v5"
)

// On pgx's own handles the locks of an attempt with keys travel in the
// BEGIN round trip, as the HotSpot's one lock does (TestHotSpotLockInBegin):
// the HotSpot's table in ROW SHARE MODE and each key's stripe in EXCLUSIVE
// MODE, so that attempts of different processes with disjoint keys run
// side by side, one that shares a key waits, and one without keys waits
// for all of them.
func TestHotSpotKeyLocksInBegin(t *testing.T) {
	inPool := inSchema(t, "pgxdb_keylocks", true)
	log := &sqlLog{}
	pool := newPool(t, 8, inPool, traced(log))
	key := rand.Int64()
	start := func(keys ...int64) *held {
		h := &held{entered: make(chan struct{}), release: make(chan struct{}), done: make(chan error, 1)}
		req := &hotlock.Request{Key: key, Keys: keys}
		go func() {
			_, err := pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				close(h.entered)
				<-h.release
				return nil
			}, pgxdb.Isolation(pgx.ReadCommitted)).Run(hotlock.With(t.Context(), req))
			h.done <- err
		}()
		t.Cleanup(h.abandon)
		return h
	}
	a := start(1, 2)
	a.mustEnter(t, "the first attempt")
	b := start(3, 4)
	b.mustEnter(t, "an attempt whose keys are disjoint from the holder's")
	c := start(2, 5)
	c.mustWait(t, "an attempt that shares key 2 with the holder")
	a.finish(t)
	c.mustEnter(t, "the attempt that shared key 2, once the holder committed")
	u := start()
	u.mustWait(t, "an attempt without keys, while keyed ones hold")
	b.finish(t)
	c.finish(t)
	u.mustEnter(t, "the attempt without keys, once the keyed ones committed")
	u.finish(t)

	locks, _ := hotlock.PostgresLocks(key, []int64{1, 2})
	want := "begin isolation level read committed; " + strings.Join(locks, "; ")
	found := false
	for _, stmt := range log.Log() {
		if stmt == want {
			found = true
		}
	}
	if !found {
		t.Errorf("no BEGIN carried the keys' locks %q; statements: %q", want, log.Log())
	}
}

type held struct {
	entered, release chan struct{}
	done             chan error
	finished         bool
}

func (h *held) mustEnter(t *testing.T, what string) {
	t.Helper()
	select {
	case <-h.entered:
	case err := <-h.done:
		t.Fatalf("%s failed: %v", what, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not begin within 10 s", what)
	}
}

func (h *held) mustWait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-h.entered:
		t.Fatalf("%s began: it should wait for the lock", what)
	case err := <-h.done:
		t.Fatalf("%s ended: %v", what, err)
	case <-time.After(300 * time.Millisecond):
	}
}

func (h *held) finish(t *testing.T) {
	t.Helper()
	h.finished = true
	close(h.release)
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
}

// abandon ends an attempt the test did not finish, when it failed first:
// its context, the test's, is cancelled before the cleanups run, which ends
// an attempt still waiting for a lock, and the release ends one that holds
// its locks.
func (h *held) abandon() {
	if !h.finished {
		h.finished = true
		close(h.release)
		<-h.done
	}
}
