package dbop

import (
	"context"
	"log/slog"
)

// SlogObserver returns an [Observer] that logs to l: each failed attempt
// that will be retried at Warn, an operation that fails at Error, and an
// operation that succeeds at Debug, or at Info when it needed retries. Each
// record carries the operation name (when [Named]), the attempt number, the
// verdict, the chosen delay and the error. It panics if l is nil.
func SlogObserver(l *slog.Logger) Observer {
	if l == nil {
		panic("dbop: SlogObserver(nil)")
	}
	return slogObserver{l}
}

type slogObserver struct{ l *slog.Logger }

// opNameKey carries the operation name from OperationStart to the attempt
// records, which have no other way to learn it.
type opNameKey struct{}

func (o slogObserver) OperationStart(ctx context.Context, name string) context.Context {
	if name == "" {
		return ctx
	}
	return context.WithValue(ctx, opNameKey{}, name)
}

func (slogObserver) AttemptStart(ctx context.Context, _ int) context.Context { return ctx }

func (o slogObserver) AttemptEnd(ctx context.Context, e AttemptEvent) {
	if e.Err == nil || !e.Retry {
		return // the operation's record says how it ended
	}
	name, _ := ctx.Value(opNameKey{}).(string)
	o.l.LogAttrs(ctx, slog.LevelWarn, "dbop: attempt failed, retrying",
		slog.String("op", name),
		slog.Int("attempt", e.Attempt),
		slog.String("verdict", e.Verdict.String()),
		slog.Duration("delay", e.Delay),
		slog.Any("error", e.Err))
}

func (o slogObserver) OperationEnd(ctx context.Context, e OperationEvent) {
	attrs := []slog.Attr{
		slog.String("op", e.Name),
		slog.Int("attempts", e.Attempts),
		slog.Duration("duration", e.Duration),
	}
	switch {
	case e.Err != nil:
		attrs = append(attrs, slog.String("verdict", VerdictOf(e.Err).String()), slog.Any("error", e.Err))
		o.l.LogAttrs(ctx, slog.LevelError, "dbop: operation failed", attrs...)
	case e.Attempts > 1:
		o.l.LogAttrs(ctx, slog.LevelInfo, "dbop: operation succeeded after retries", attrs...)
	default:
		o.l.LogAttrs(ctx, slog.LevelDebug, "dbop: operation succeeded", attrs...)
	}
}
