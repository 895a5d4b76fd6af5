package demo

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
)

// state reports whether a goroutine's wait has returned, and with what.
type state struct {
	done bool
	err  error
}

// start runs wait on a goroutine of its own and returns its state, to read
// after synctest.Wait.
func start(ctx context.Context, wait func(context.Context) error) *state {
	s := &state{}
	go func() {
		s.err = wait(ctx)
		s.done = true
	}()
	return s
}

func TestRendezvousWaitsForAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRendezvous(3)
		var states []*state
		for range 2 {
			wait, _ := r.Party()
			states = append(states, start(t.Context(), wait))
		}
		synctest.Wait()
		for i, s := range states {
			if s.done {
				t.Fatalf("party %d returned before the third arrived", i+1)
			}
		}
		wait, _ := r.Party()
		if err := wait(t.Context()); err != nil {
			t.Fatalf("last party: %v", err)
		}
		synctest.Wait()
		for i, s := range states {
			if !s.done || s.err != nil {
				t.Errorf("party %d: done %v, err %v; want done, nil", i+1, s.done, s.err)
			}
		}
	})
}

// TestRendezvousLeave: a party whose operation failed before it arrived
// leaves, and the others are not kept waiting.
func TestRendezvousLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRendezvous(2)
		wait1, leave1 := r.Party()
		_, leave2 := r.Party()
		s := start(t.Context(), wait1)
		synctest.Wait()
		if s.done {
			t.Fatal("party 1 returned before party 2 arrived or left")
		}
		leave2()
		synctest.Wait()
		if !s.done || s.err != nil {
			t.Errorf("party 1 after party 2 left: done %v, err %v; want done, nil", s.done, s.err)
		}
		leave1() // after wait: does nothing (a second arrival would close twice)
		leave2()
	})
}

// TestRendezvousRetryPassesAtOnce: only an operation's first attempt waits;
// its retries run on, even while the others have not arrived.
func TestRendezvousRetryPassesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRendezvous(2)
		wait, _ := r.Party()
		ctx, cancel := context.WithCancelCause(t.Context())
		errGone := errors.New("the other party never came")
		first := start(ctx, wait)
		synctest.Wait()
		cancel(errGone)
		synctest.Wait()
		if !first.done || !errors.Is(first.err, errGone) {
			t.Fatalf("first wait: done %v, err %v; want done, %v", first.done, first.err, errGone)
		}
		if err := wait(t.Context()); err != nil {
			t.Errorf("second wait (a retry): %v, want nil at once", err)
		}
	})
}

func TestNewRendezvousPanicsWithoutParties(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewRendezvous(0) did not panic")
		}
	}()
	NewRendezvous(0)
}

func TestAwait(t *testing.T) {
	errCause := errors.New("phase over")
	closed := make(chan struct{})
	close(closed)
	tests := []struct {
		name   string
		done   chan struct{}
		cancel bool
		want   error
	}{
		{"closed", closed, false, nil},
		{"cancelled", make(chan struct{}), true, errCause},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			if tt.cancel {
				cancel(errCause)
			}
			got := Await(ctx, tt.done)
			if tt.want == nil && got != nil || tt.want != nil && !errors.Is(got, tt.want) {
				t.Errorf("Await = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAwaitBlocksUntilClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		s := start(t.Context(), func(ctx context.Context) error { return Await(ctx, done) })
		synctest.Wait()
		if s.done {
			t.Fatal("Await returned before the channel closed")
		}
		close(done)
		synctest.Wait()
		if !s.done || s.err != nil {
			t.Errorf("Await after close: done %v, err %v; want done, nil", s.done, s.err)
		}
	})
}
