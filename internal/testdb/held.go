package testdb

import (
	"context"
	"testing"
	"time"
)

// Held is an operation that a test holds inside its transaction, its
// locks taken, until the test finishes it: the tests of dbop.HotSpot's
// locks start several and check which may begin while others hold theirs.
type Held struct {
	entered, release chan struct{}
	done             chan error
	finished         bool
}

// Hold starts run in a goroutine, on the test's context. run runs the
// operation and calls inside from its transaction's function, once the
// transaction has begun and taken its locks; inside returns when the
// test finishes the operation. An operation the test did not finish, when
// it failed first, is ended as the test's cleanup: the test's context is
// cancelled before the cleanups run, which ends an operation still waiting
// for a lock, and the release ends one that holds its locks.
func Hold(t *testing.T, run func(ctx context.Context, inside func()) error) *Held {
	h := &Held{entered: make(chan struct{}), release: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		h.done <- run(t.Context(), func() {
			close(h.entered)
			<-h.release
		})
	}()
	t.Cleanup(func() {
		if !h.finished {
			h.finished = true
			close(h.release)
			<-h.done
		}
	})
	return h
}

// MustEnter fails the test unless the operation begins its transaction's
// function within 10 s.
func (h *Held) MustEnter(t *testing.T, what string) {
	t.Helper()
	select {
	case <-h.entered:
	case err := <-h.done:
		t.Fatalf("%s failed: %v", what, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not begin within 10 s", what)
	}
}

// MustWait fails the test if the operation has begun its transaction's
// function, or ended, 300 ms after it was started: it waits for a lock.
func (h *Held) MustWait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-h.entered:
		t.Fatalf("%s began: it should wait for the lock", what)
	case err := <-h.done:
		t.Fatalf("%s ended: %v", what, err)
	case <-time.After(300 * time.Millisecond):
	}
}

// Finish lets the operation commit and fails the test if it fails.
func (h *Held) Finish(t *testing.T) {
	t.Helper()
	h.finished = true
	close(h.release)
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
}
