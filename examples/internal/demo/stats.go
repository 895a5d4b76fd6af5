package demo

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
)

// Stats counts the attempts and the retries of every operation of a run,
// the retries by cause. The zero value counts nothing yet. It is safe for
// concurrent use, so one Stats serves every goroutine of a run.
type Stats struct {
	attempts atomic.Int64
	mu       sync.Mutex
	retries  map[string]int // by cause
}

// Attempt counts one attempt. It has the signature of a dbop.Before hook:
// listed inside dbop.WithRetry, it runs once per attempt.
func (s *Stats) Attempt(context.Context) error {
	s.attempts.Add(1)
	return nil
}

// Retried counts one retry under cause, the name a dbop.OnRetry hook
// gives to what failed (such as [PostgresCause] of the event's error).
func (s *Stats) Retried(cause string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retries == nil {
		s.retries = map[string]int{}
	}
	s.retries[cause]++
}

// Snapshot returns the attempts and the retries counted so far.
func (s *Stats) Snapshot() (attempts int64, retries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts.Load(), Total(s.retries)
}

// Retries returns the retries counted so far, by cause, in a map of the
// caller's own.
func (s *Stats) Retries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	byCause := make(map[string]int, len(s.retries))
	for cause, n := range s.retries {
		byCause[cause] = n
	}
	return byCause
}

// Caused returns the retries counted so far whose cause starts with
// prefix, such as a SQLSTATE or an error number.
func (s *Stats) Caused(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for cause, k := range s.retries {
		if strings.HasPrefix(cause, prefix) {
			n += k
		}
	}
	return n
}

// Total returns the sum of counts, the retries of all causes.
func Total(counts map[string]int) int {
	n := 0
	for _, k := range counts {
		n += k
	}
	return n
}
