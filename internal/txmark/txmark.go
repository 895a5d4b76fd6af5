// Package txmark holds what the transaction scopes (package scopes) and the
// retry (package dbop) tell each other about a transaction: marks on errors
// that say what an error did to the transaction it happened in, and context
// values that say which transaction a piece of work runs in.
//
// It is internal so that the protocol can change without changing the public
// API: users see its effect through [dbop.WithRetry]'s rules, never its
// types.
//
// # Marks on errors
//
// A scope that knows what happened to its transaction wraps the error it
// returns in one of three marks; the outermost mark on an error's chain is
// the one that counts ([Of]):
//
//   - [Undone]: a savepoint scope rolled back to its savepoint; the
//     statement's effects are gone and the transaction is usable, so a retry
//     inside the transaction may run the statement again.
//   - [Doomed]: the transaction can no longer do useful work (the server
//     rolled it back, or its state is unknown). No retry that runs inside it
//     may act on the error; only its owner may.
//   - [Released]: the transaction's owner (the scope that began it) has
//     ended it. Whoever receives the error is outside it, so any retry may
//     act on the error as its verdict says.
//
// The marks are transparent: Error returns the wrapped error's text, and
// Unwrap returns it, so errors.Is and errors.As reach the driver's error.
package txmark

import (
	"context"
	"sync"
	"time"
)

// State is one transaction as seen by the scopes that run inside it. A
// transaction scope creates one per transaction and hands it down in the
// context ([WithState]); a savepoint scope that dooms the transaction
// records the error in it, so that the owner never commits a transaction a
// scope inside it saw doomed, even if the function swallowed the error.
//
// Retries inside the transaction record into it too, and they may run on
// several goroutines at once (dbop.All's ops inside a transaction), so it
// is safe for concurrent use.
type State struct {
	mu   sync.Mutex
	doom error // the first error that doomed the transaction

	// limits is the deadline the owner derived the transaction's server
	// limits from, zero for none. It is set before the state is handed
	// down and only read after, so it needs no lock.
	limits time.Time
	// owned: the transaction was begun by a transaction scope (InTx), not
	// by the caller; set before the state is handed down.
	owned bool
	// session is the handle of the transaction whose connection the
	// owner holds for its length, as the adapter's savepoint steps name it
	// (SetSession); nil when the adapter records none.
	session any
}

// SetSession records handle (comparable: a *sql.Tx, a pointer) as the
// transaction the owner began and holds a connection for. An adapter whose
// savepoint steps set session settings (MySQL, MariaDB) calls it before it
// hands the state to the caller's function, never after: a step sets them
// only on that transaction (Session), not on another the caller began
// under the owner's context, which database/sql may put back in its pool,
// ended by the caller's cancellation, with the setting on it.
func (s *State) SetSession(handle any) { s.session = handle }

// Session returns the handle SetSession recorded, nil if none.
func (s *State) Session() any { return s.session }

// SetOwned records that a transaction scope began the transaction, and
// will end it, on a connection it holds for the transaction's length
// (InTx). The owner calls it before it hands the state down, never after.
func (s *State) SetOwned() { s.owned = true }

// Owned reports whether SetOwned was called: in a transaction InTx began,
// a savepoint step's own deadline is any earlier than InTx's, or any at all
// when InTx had none (resolve.StepLimit); in one the caller began, only a
// WithTimeout's around the step (AttemptDeadline).
func (s *State) Owned() bool { return s.owned }

// SetLimitsDeadline records deadline as the one the transaction's owner
// derived its server-side limits from (the context deadline of the
// attempt that began the transaction). The owner calls it before it hands
// the state down, never after.
func (s *State) SetLimitsDeadline(deadline time.Time) { s.limits = deadline }

// LimitsDeadline returns the deadline recorded by SetLimitsDeadline; ok is
// false when none was. A savepoint step derives limits of its own only from
// a deadline earlier than it: the limits in force already end a statement
// before this one.
func (s *State) LimitsDeadline() (deadline time.Time, ok bool) {
	return s.limits, !s.limits.IsZero()
}

// Doom records err as the error that doomed the transaction, unless one is
// recorded already.
func (s *State) Doom(err error) {
	s.mu.Lock()
	if s.doom == nil {
		s.doom = err
	}
	s.mu.Unlock()
}

// Doomed returns the error that doomed the transaction, or nil.
func (s *State) Doomed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doom
}

type stateKey struct{}

// WithState returns a context that marks work run with it as inside a
// transaction, with s as that transaction's state. It is a frame for the
// savepoints released inside it ([SavepointReleased]): should the transaction be
// rolled back, they are undone with it.
func WithState(ctx context.Context, s *State) context.Context {
	x := &stateCtx{Context: ctx, s: s}
	x.frame.link(ctx)
	x.frame.makeFrame()
	return x
}

// stateCtx carries a State and a frame in one allocation.
type stateCtx struct {
	context.Context
	s     *State
	frame Commits
}

func (x *stateCtx) Value(key any) any {
	switch key {
	case stateKey{}:
		return x.s
	case commitsKey{}:
		return &x.frame
	}
	return x.Context.Value(key)
}

// StateOf returns the state of the transaction ctx runs in, or nil when ctx
// is not marked as inside one.
func StateOf(ctx context.Context) *State {
	s, _ := ctx.Value(stateKey{}).(*State)
	return s
}

// Kind says what a mark means; see the package documentation.
type Kind uint8

const (
	None     Kind = iota // no mark
	Undone               // the statement was undone at a savepoint
	Doomed               // the transaction is doomed; only its owner may act
	Released             // the owner ended the transaction
)

// Mark is an error with a [Kind].
type Mark struct {
	Kind Kind
	// Key identifies the transaction for a Doomed mark, and the scope
	// for an Undone one: the scope's handle on the transaction (a
	// savepoint scope's Savepointer, the key it is listed with in a
	// pipeline). It is comparable.
	Key any
	Err error
}

func (m *Mark) Error() string { return m.Err.Error() }

// Unwrap returns the marked error.
func (m *Mark) Unwrap() error { return m.Err }

// Of returns the outermost mark on err's chain, looking through wrapped and
// joined errors, or nil when there is none.
func Of(err error) *Mark {
	for err != nil {
		switch e := err.(type) {
		case *Mark:
			return e
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				if m := Of(inner); m != nil {
					return m
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

// DoomKeys returns the keys of every Doomed mark on err's chain, released or
// not: the transactions a retry of err must not run in again.
func DoomKeys(err error) []any {
	var keys []any
	var walk func(error)
	walk = func(err error) {
		for err != nil {
			if m, ok := err.(*Mark); ok && m.Kind == Doomed {
				keys = append(keys, m.Key)
			}
			switch e := err.(type) {
			case interface{ Unwrap() error }:
				err = e.Unwrap()
			case interface{ Unwrap() []error }:
				for _, inner := range e.Unwrap() {
					walk(inner)
				}
				return
			default:
				return
			}
		}
	}
	walk(err)
	return keys
}

// IsDoomedFor reports whether err's outermost mark dooms the transaction
// key.
func IsDoomedFor(err error, key any) bool {
	m := Of(err)
	return m != nil && m.Kind == Doomed && m.Key == key
}

// Retried is what a retry that ran again after an error dooming some
// transaction tells its later attempts: the transaction key must not be
// used again, and Err is the error that doomed it. A scope on key that
// finds a Retried for it in its context returns Err without touching the
// transaction: the retry that got there runs inside the doomed transaction
// after all, and stops when it sees its own error come back.
type Retried struct {
	Key    any
	Err    error
	parent *Retried
}

type retriedKey struct{}

// WithRetried returns a context carrying a Retried for each of keys, after
// those ctx already carries.
func WithRetried(ctx context.Context, keys []any, err error) context.Context {
	r, _ := ctx.Value(retriedKey{}).(*Retried)
	for _, k := range keys {
		r = &Retried{Key: k, Err: err, parent: r}
	}
	return context.WithValue(ctx, retriedKey{}, r)
}

// RetriedErr returns the error that doomed the transaction key, when a retry
// around ctx ran again after it, or nil.
func RetriedErr(ctx context.Context, key any) error {
	r, _ := ctx.Value(retriedKey{}).(*Retried)
	for ; r != nil; r = r.parent {
		if r.Key == key {
			return r.Err
		}
	}
	return nil
}

// Comparable reports whether v can be used as a key: == on it does not
// panic. It is meant for construction time; it allocates.
func Comparable(v any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	_ = map[any]bool{v: true} // hashing panics on a value that is not comparable
	return true
}

// Certify marks d, a decorator dbop.AroundTx returned, as a scope that
// certifies what it rolls back (a savepoint scope: its Undone marks carry
// the key it is listed with): a retry or fallback listed around it in the
// same pipeline may trust them. The scopes call it on the decorators they
// build; an AroundTx of the caller's is the caller's code. dbop sets it.
var Certify func(d any)

// InsideSavepoint, set by package scopes, returns a scopes.SavepointOption
// that makes scopes.InSavepoint run each attempt through fn inside its
// savepoint, after SAVEPOINT and before the RELEASE or ROLLBACK TO: how an
// adapter's InSavepoint sets an attempt's server limits
// (resolve.SavepointLimits) without a Decorator of its own, whose pipeline
// layer would allocate on every attempt. It is not public API: the
// option's type is scopes', which this package cannot name.
var InsideSavepoint func(fn func(ctx context.Context, next func(context.Context) error) error) any

// spDepthKey is the context key of the savepoint nesting depth.
type spDepthKey struct{}

// WithSavepointDepth returns ctx marked as running inside the savepoint at
// nesting depth depth, counted from 1 (scopes.InSavepoint marks each
// attempt's context so).
func WithSavepointDepth(ctx context.Context, depth int) context.Context {
	return context.WithValue(ctx, spDepthKey{}, depth)
}

// SavepointDepth returns the nesting depth of the savepoint ctx runs in,
// 0 outside any: what an adapter's savepoint scope keys the state of one
// attempt by, so that nested savepoints do not share it.
func SavepointDepth(ctx context.Context) int {
	d, _ := ctx.Value(spDepthKey{}).(int)
	return d
}

// attemptDeadlineKey is the context key of WithAttemptDeadline's mark.
type attemptDeadlineKey struct{}

// WithAttemptDeadline returns ctx, whose deadline a dbop.WithTimeout set
// around a scope listed after it in the same pipeline, marked so: the
// deadline is one attempt's of the operation inside, not the caller's. A
// savepoint step outside InTx derives server limits only from such a
// deadline (resolve.StepLimit): the caller's own deadline, a request's,
// would cost the step two statements and save nothing the caller's next
// statement would not lose anyway.
func WithAttemptDeadline(ctx context.Context) context.Context {
	return context.WithValue(ctx, attemptDeadlineKey{}, ctx)
}

// AttemptDeadline reports whether ctx's deadline is the one of the
// nearest context WithAttemptDeadline marked: no earlier deadline was set
// inside it since.
func AttemptDeadline(ctx context.Context) bool {
	marked, ok := ctx.Value(attemptDeadlineKey{}).(context.Context)
	if !ok {
		return false
	}
	at, ok := marked.Deadline()
	d, has := ctx.Deadline()
	return ok && has && at.Equal(d)
}
