package dboptest_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/dbop-go/dbop/dboptest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestScript(t *testing.T) {
	errA, errB := errors.New("a"), errors.New("b")
	type outcome struct {
		V   int
		Err error
	}
	tests := []struct {
		name string
		errs []error
		want []outcome // of successive calls
	}{
		{"no errors", nil, []outcome{{7, nil}, {7, nil}}},
		{"errors in order, then the value", []error{errA, errB}, []outcome{{0, errA}, {0, errB}, {7, nil}, {7, nil}}},
		{"nil entry succeeds", []error{nil, errA}, []outcome{{7, nil}, {0, errA}, {7, nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := dboptest.Script(7, tt.errs...)
			op := s.Op()
			var got []outcome
			for range tt.want {
				v, err := op.Run(t.Context())
				got = append(got, outcome{v, err})
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("outcomes mismatch (-want +got):\n%s", diff)
			}
			if s.Calls() != len(tt.want) {
				t.Errorf("Calls() = %d, want %d", s.Calls(), len(tt.want))
			}
		})
	}
}

func TestScriptKeepsItsOwnCopy(t *testing.T) {
	errA := errors.New("a")
	errs := []error{errA}
	s := dboptest.Script("ok", errs...)
	errs[0] = nil
	if _, err := s.Op().Run(t.Context()); err != errA {
		t.Errorf("first call error = %v, want %v", err, errA)
	}
}

func TestScriptConcurrent(t *testing.T) {
	errA := errors.New("a")
	s := dboptest.Script(1, errA, errA, errA)
	op := s.Op()
	const n = 50
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	for range n {
		wg.Go(func() {
			if _, err := op.Run(t.Context()); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if s.Calls() != n || failed != 3 {
		t.Errorf("Calls() = %d, failures = %d; want %d, 3", s.Calls(), failed, n)
	}
}
