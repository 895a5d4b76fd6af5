package demo

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// PhaseLog tells what happens during one phase of a run: Printf writes
// between Start and Stop and does nothing otherwise. The zero value is
// stopped. It is safe for concurrent use, and writes one line at a time.
type PhaseLog struct {
	mu sync.Mutex
	w  io.Writer // nil when stopped
}

// Start makes Printf write to w.
func (l *PhaseLog) Start(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w = w
}

// Stop makes Printf do nothing.
func (l *PhaseLog) Stop() { l.Start(nil) }

// Printf writes a formatted line, as [fmt.Fprintf] does, if the log is
// started.
func (l *PhaseLog) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		fmt.Fprintf(l.w, format, args...)
	}
}

// idKey is the context key under which an operation's id travels.
type idKey struct{}

// WithID returns a copy of ctx that carries id, the name of the operation
// about to run with it, for its hooks (a dbop.OnRetry hook, say) to tell.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, idKey{}, id)
}

// ID returns the id [WithID] put in ctx, or "" if none.
func ID(ctx context.Context) string {
	id, _ := ctx.Value(idKey{}).(string)
	return id
}
