package otel

import (
	"context"
	"errors"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// errorType returns the value of the error.type attribute for err, a
// low-cardinality class of the error that ended an attempt or an operation.
// dbop's own wrappers are looked through to the cause, and the first of these
// that applies names it:
//
//   - an ErrorType() string method (the semantic conventions' own hook);
//   - an SQLState() string method, as on *pgconn.PgError: the SQLSTATE code,
//     as the database conventions ask (db.response.status_code);
//   - context.DeadlineExceeded or context.Canceled: those names;
//   - otherwise the cause's type name, as [semconv.ErrorType] gives it.
func errorType(err error) string {
	cause := unwrapDbop(err)
	var et interface{ ErrorType() string }
	if errors.As(cause, &et) {
		if s := et.ErrorType(); s != "" {
			return s
		}
	}
	var st interface{ SQLState() string }
	if errors.As(cause, &st) {
		if s := st.SQLState(); s != "" {
			return s
		}
	}
	switch {
	case errors.Is(cause, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	case errors.Is(cause, context.Canceled):
		return "context.Canceled"
	}
	return semconv.ErrorType(cause).Value.AsString()
}

// unwrapDbop strips the wrappers dbop puts around an attempt's error, which
// name no class of their own: a *dbop.RetryError gives way to its last
// attempt's error, a transaction scope's mark (undone, doomed, released)
// to the error it marks, and so does the mark of a Then or All that failed
// after a step took effect. dbop's verdict (attached by a classifier, a scope
// or [dbop.Classify]) is an unexported wrapper, recognised by what it is:
// a single-cause wrapper that says exactly what its cause says. Any wrapper
// of that shape adds nothing a reader of the telemetry could tell apart, so
// it is looked through too, unless it names its class with an ErrorType
// method.
func unwrapDbop(err error) error {
	for {
		switch e := err.(type) {
		case *dbop.RetryError:
			err = e.Err
		case *txmark.Mark:
			err = e.Err
		case *txmark.After:
			err = e.Err
		case interface{ ErrorType() string }:
			return err
		case interface{ Unwrap() error }:
			cause := e.Unwrap()
			if cause == nil || cause.Error() != err.Error() {
				return err
			}
			err = cause
		default:
			return err
		}
	}
}
