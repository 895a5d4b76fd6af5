// Package attempt marks the context values that belong to one attempt of
// an operation.
//
// A value put on an attempt's context by a retry, a HotSpot or an observer
// of the attempt (mysqldb's Failover) describes that attempt alone: the
// retry's count, the HotSpot's admission and bounds, the connection the
// attempt pinned. Work that serves other callers or outlives the attempt —
// a dbop.Flight's shared run, which one caller's attempt starts and others
// join — must not see it: it would be read on another goroutine while the
// attempt's owner goes on, and act for the run as if the run were that
// attempt.
package attempt

// Scoped is implemented by the context keys of such values. The method
// does nothing; its presence is the mark.
type Scoped interface{ AttemptScoped() }
