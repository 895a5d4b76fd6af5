package txmark

import (
	"context"
	"sync/atomic"
)

// Commits counts the transactions that committed while work ran with a
// context that carries it ([WithCommits]): dbop.Then and dbop.All install
// one per run, and a transaction scope that committed records it
// ([Committed]), so that a step that fails after another committed can
// say so, and a retry around the whole never runs the committed step
// again.
type Commits struct {
	n      atomic.Int64
	parent *Commits // the Commits of an enclosing Then or All, which counts these too
}

// Count returns the number of commits recorded.
func (c *Commits) Count() int64 { return c.n.Load() }

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

// WithCommits returns a context that counts the commits of the work run
// with it, and the count. An enclosing count (a Then inside an All) counts
// them too.
func WithCommits(ctx context.Context) (context.Context, *Commits) {
	x := &commitsCtx{Context: ctx}
	x.c.parent, _ = ctx.Value(commitsKey{}).(*Commits)
	return x, &x.c
}

// Committed records that a transaction run with ctx committed, in every
// count ctx carries; it does nothing when ctx carries none.
func Committed(ctx context.Context) {
	c, _ := ctx.Value(commitsKey{}).(*Commits)
	for ; c != nil; c = c.parent {
		c.n.Add(1)
	}
}
