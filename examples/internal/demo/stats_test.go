package demo

import (
	"context"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStatsZeroValue(t *testing.T) {
	var s Stats
	if a, r := s.Snapshot(); a != 0 || r != 0 {
		t.Errorf("Snapshot = %d, %d; want 0, 0", a, r)
	}
	if got := s.Retries(); got == nil || len(got) != 0 {
		t.Errorf("Retries = %#v, want an empty map", got)
	}
	if got := s.Caused(""); got != 0 {
		t.Errorf("Caused(\"\") = %d, want 0", got)
	}
}

// TestStatsConcurrent counts from many goroutines at once, as the examples'
// workers do.
func TestStatsConcurrent(t *testing.T) {
	const goroutines = 8
	var s Stats
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range 3 {
				if err := s.Attempt(context.Background()); err != nil {
					t.Errorf("Attempt: %v", err)
				}
			}
			s.Retried("40P01 deadlock_detected (retry-transaction)")
			s.Retried("40001 serialization_failure (retry-transaction)")
			s.Snapshot()
		})
	}
	wg.Wait()
	attempts, retries := s.Snapshot()
	if attempts != 3*goroutines || retries != 2*goroutines {
		t.Errorf("Snapshot = %d, %d; want %d, %d", attempts, retries, 3*goroutines, 2*goroutines)
	}
	want := map[string]int{
		"40P01 deadlock_detected (retry-transaction)":     goroutines,
		"40001 serialization_failure (retry-transaction)": goroutines,
	}
	if diff := cmp.Diff(want, s.Retries()); diff != "" {
		t.Errorf("Retries (-want +got):\n%s", diff)
	}
}

func TestStatsRetriesIsACopy(t *testing.T) {
	var s Stats
	s.Retried("a")
	got := s.Retries()
	got["a"] = 100
	got["b"] = 1
	if diff := cmp.Diff(map[string]int{"a": 1}, s.Retries()); diff != "" {
		t.Errorf("Retries after changing an earlier copy (-want +got):\n%s", diff)
	}
}

func TestStatsCaused(t *testing.T) {
	var s Stats
	for cause, n := range map[string]int{
		"40001 serialization_failure (retry-transaction)": 3,
		"40P01 deadlock_detected (retry-transaction)":     2,
		"55P03 lock_not_available (retry-statement)":      1,
		"1213 ER_LOCK_DEADLOCK (retry-transaction)":       4,
	} {
		for range n {
			s.Retried(cause)
		}
	}
	tests := []struct {
		prefix string
		want   int
	}{
		{"", 10},
		{"40001", 3},
		{"40P01", 2},
		{"40", 5},
		{"55P03 lock_not_available", 1},
		{"1213", 4},
		{"1205", 0},
		{"serialization_failure", 0}, // a prefix, not a substring
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			if got := s.Caused(tt.prefix); got != tt.want {
				t.Errorf("Caused(%q) = %d, want %d", tt.prefix, got, tt.want)
			}
		})
	}
}

func TestTotal(t *testing.T) {
	tests := []struct {
		name   string
		counts map[string]int
		want   int
	}{
		{"nil", nil, 0},
		{"empty", map[string]int{}, 0},
		{"one", map[string]int{"a": 7}, 7},
		{"several", map[string]int{"a": 1, "b": 2, "c": 3}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Total(tt.counts); got != tt.want {
				t.Errorf("Total = %d, want %d", got, tt.want)
			}
		})
	}
}
