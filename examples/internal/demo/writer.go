package demo

import (
	"io"
	"sync"
)

// LockedWriter serializes the writes of goroutines that share a writer, so
// that each Write reaches it whole. It is safe for concurrent use.
type LockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Locked returns a LockedWriter that writes to w.
func Locked(w io.Writer) *LockedWriter {
	return &LockedWriter{w: w}
}

// Write writes p to the underlying writer, one call at a time.
func (l *LockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
