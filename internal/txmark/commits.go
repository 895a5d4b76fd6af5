package txmark

import (
	"context"
	"iter"
	"sync/atomic"
)

// Commits counts the work that took effect while work ran with a context
// that carries it ([WithCommits]): dbop.Then and dbop.All install one per
// run, so that a step that fails after another's work took effect can say
// so, and a retry around the whole never runs that step again.
//
// Two kinds of work are counted. A transaction scope that committed
// records it ([Committed]) in every count up the context: nothing undoes a
// commit. A savepoint scope that released its savepoint records it
// ([SavepointReleased]) only up to the nearest enclosing frame, the savepoint or
// transaction it ran in ([WithFrame], [WithState]): should that frame be
// rolled back, the release is undone with it, and the counts outside it
// never saw it.
type Commits struct {
	n, rel atomic.Int64
	parent *Commits // the enclosing count or frame
	in     *Commits // the nearest frame above, nil when there is none
	// above holds the enclosing frames, nearest first, with their counts
	// of releases when this count was installed: a release into one of
	// them since came from this count's work (a transaction serves one
	// goroutine at a time), even if a step ran its savepoint scope with
	// another context of the transaction than the one it was handed.
	above [maxFramesAbove]frameCount
	frame bool   // a savepoint or transaction: releases inside it stop here
	id    uint64 // a frame's identity, for marks (which must not keep it alive)
}

// frameCount is a frame and its count of releases at some moment.
type frameCount struct {
	f   *Commits
	rel int64
}

// maxFramesAbove bounds the frames a count or a savepoint attempt watches:
// a transaction and the savepoints nested in it, rarely more than a few.
const maxFramesAbove = 4

// snapshot records the frames above c (up to maxFramesAbove) and their
// counts of releases now.
func snapshot(from *Commits, into *[maxFramesAbove]frameCount) {
	i := 0
	for f := from; f != nil && i < maxFramesAbove; f = f.in {
		into[i] = frameCount{f, f.rel.Load()}
		i++
	}
}

// frameIDs numbers the frames.
var frameIDs atomic.Uint64

// Frame returns the identity of the savepoint attempt or transaction this
// count runs in: the releases it counts stand there, and are undone with
// it. It is 0 when ctx carried no frame (a transaction begun by hand, not
// marked with dbop.WithinTx).
func (c *Commits) Frame() uint64 {
	if c.in == nil {
		return 0
	}
	return c.in.id
}

// link makes c a child of ctx's count or frame.
func (c *Commits) link(ctx context.Context) {
	c.parent = commitsOf(ctx)
	if p := c.parent; p != nil {
		c.in = p.in
		if p.frame {
			c.in = p
		}
	}
	snapshot(c.in, &c.above)
}

// makeFrame makes c, linked, a frame.
func (c *Commits) makeFrame() {
	c.frame = true
	c.id = frameIDs.Add(1)
}

// Within reports whether work running with ctx runs inside the frame
// whose identity is id, where releases counted in it still stand: it is
// ctx's nearest frame or one enclosing it. Frame 0 (none was known)
// encloses everything.
func Within(ctx context.Context, id uint64) bool {
	if id == 0 {
		return true
	}
	for c := commitsOf(ctx); c != nil; c = c.parent {
		if c.frame && c.id == id {
			return true
		}
	}
	return false
}

// TookEffect records, in c alone, that a step of its Then or All succeeded
// inside a transaction: whatever it ran there stands in the frame c runs
// in, as a released savepoint's work does, though no scope counted it (a
// plain statement, a read).
func (c *Commits) TookEffect() { c.rel.Add(1) }

// Count returns the number of commits recorded.
func (c *Commits) Count() int64 { return c.n.Load() }

// Releases returns the number of released savepoints that still stand
// where this count was installed, recorded through its context or into
// the frame it runs in since it was installed (a step that ran a savepoint
// with the transaction's context rather than the one it was handed).
func (c *Commits) Releases() int64 {
	var since int64
	for _, fc := range c.above {
		if fc.f != nil {
			since += fc.f.rel.Load() - fc.rel
		}
	}
	return max(c.rel.Load(), since)
}

// Attempt is what a savepoint attempt watches of the frames around it.
type Attempt struct{ above [maxFramesAbove]frameCount }

// StartAttempt records, for a savepoint attempt about to run with ctx
// (outside the savepoint), the releases counted so far in the frames
// around it.
func StartAttempt(ctx context.Context) (a Attempt) {
	c := commitsOf(ctx)
	if c == nil {
		return a
	}
	f := c
	if !f.frame {
		f = c.in
	}
	snapshot(f, &a.above)
	return a
}

// RolledBack records that the savepoint attempt a watched was rolled back:
// releases that reached the frames around it since it started were made
// inside it, by scopes run with a context that skipped its frame (the
// transaction's), and the rollback undid them.
func (a *Attempt) RolledBack() {
	for _, fc := range a.above {
		if fc.f != nil {
			if d := fc.f.rel.Load() - fc.rel; d > 0 {
				fc.f.rel.Add(-d)
			}
		}
	}
}

type commitsKey struct{}

// commitsCtx carries a Commits with no allocation beyond itself.
type commitsCtx struct {
	context.Context
	c Commits
}

func (x *commitsCtx) Value(key any) any {
	if key == (commitsKey{}) {
		return &x.c
	}
	return x.Context.Value(key)
}

// CommitsOf returns the count ctx carries, nil when it carries none: the
// frame of the transaction a scope handed ctx in ([WithState]), or the
// count of a Then or All.
func CommitsOf(ctx context.Context) *Commits { return commitsOf(ctx) }

func commitsOf(ctx context.Context) *Commits {
	c, _ := ctx.Value(commitsKey{}).(*Commits)
	return c
}

// WithCommits returns a context that counts the commits and releases of
// the work run with it, and the count. An enclosing count (a Then inside an
// All) counts them too.
func WithCommits(ctx context.Context) (context.Context, *Commits) {
	x := &commitsCtx{Context: ctx}
	x.c.link(ctx)
	return x, &x.c
}

// WithFrame returns a context for work that runs inside a savepoint: the
// savepoints released inside it are counted by the counts installed inside
// it only, until it is released itself.
func WithFrame(ctx context.Context) context.Context {
	x := &commitsCtx{Context: ctx}
	x.c.link(ctx)
	x.c.makeFrame()
	return x
}

// Committed records that a transaction run with ctx committed, in every
// count ctx carries; it does nothing when ctx carries none.
func Committed(ctx context.Context) {
	for c := commitsOf(ctx); c != nil; c = c.parent {
		c.n.Add(1)
	}
}

// SavepointReleased records that a savepoint whose scope ran with ctx (outside the
// savepoint) was released: its work is now part of the enclosing savepoint
// or transaction, which a count inside that frame must not run again, and
// which a count outside it will see only if the frame itself is released
// or committed.
func SavepointReleased(ctx context.Context) {
	for c := commitsOf(ctx); c != nil; c = c.parent {
		c.rel.Add(1)
		if c.frame {
			return
		}
	}
}

// After is the error of a dbop.Then or dbop.All that failed after one of
// its steps' work took effect: a transaction scope committed, or, inside
// a transaction, a savepoint scope released its savepoint. A retry around
// it does not run it again, and a fallback does not replace it, while that
// work stands (dbop's committedBefore).
type After struct {
	Err error
	// Released: no transaction had committed, only savepoints been
	// released; their work stands in the frame Frame identifies, and only
	// for work that runs inside it ([Within]): outside, that frame was
	// rolled back or committed as a whole (and a commit is counted as
	// one).
	Released bool
	Frame    uint64
}

func (e *After) Error() string {
	if e.Released {
		return e.Err.Error() + " (after a step of the operation had released its savepoint)"
	}
	return e.Err.Error() + " (after a step of the operation had committed its transaction)"
}

// Unwrap returns the marked error.
func (e *After) Unwrap() error { return e.Err }

// Afters yields the After marks on err's chain, outermost first, through
// wrapped and joined errors.
func Afters(err error) iter.Seq[*After] {
	return func(yield func(*After) bool) {
		var walk func(err error) bool
		walk = func(err error) bool {
			for err != nil {
				if a, ok := err.(*After); ok && !yield(a) {
					return false
				}
				switch e := err.(type) {
				case interface{ Unwrap() error }:
					err = e.Unwrap()
				case interface{ Unwrap() []error }:
					for _, inner := range e.Unwrap() {
						if !walk(inner) {
							return false
						}
					}
					return true
				default:
					return true
				}
			}
			return true
		}
		walk(err)
	}
}

// CommitIn returns the first After mark on err's chain that records a
// commit (not only released savepoints), or nil.
func CommitIn(err error) *After {
	for a := range Afters(err) {
		if !a.Released {
			return a
		}
	}
	return nil
}
