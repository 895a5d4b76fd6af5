package dbop

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// A Budget limits retries across every operation that shares it, so that
// when the database is down a fleet of callers does not multiply its load by
// the attempt limit: a retry storm is what keeps a recovering database down.
// Attach one to many retries with [WithBudget].
//
// The model is a token bucket, as in gRPC's retry throttling and Finagle's
// retry budget. Each operation's first attempt deposits Ratio tokens, up to
// Max; each retry withdraws one token and is refused, ending the operation
// with [ErrBudgetExhausted], when less than one is left. So over any
// stretch of time, retries never exceed Max plus Ratio times the
// operations started: with a Ratio of 0.1, retries add at most about 10% to
// the load however long the outage lasts, and when it ends, new operations
// refill the bucket and retries resume. An optional floor (MinRate) still
// allows a few retries per second when the bucket is empty, for callers too
// quiet to refill it.
//
// The zero value is ready to use: a Ratio of 0.1, a Max of 100 tokens, no
// floor. (A Max below one token never pays for a retry, which leaves only
// the floor.) A Budget starts full. Set its fields before its first use and do
// not change them afterwards; [WithBudget] refuses values out of range. A
// Budget is safe for concurrent use, lock-free, and costs no allocation; it
// must not be copied after first use.
type Budget struct {
	// Ratio is the number of tokens each operation's first attempt
	// deposits, between 0 and 1; 0 means 0.1.
	Ratio float64
	// Max is the number of tokens the bucket holds at most, and starts
	// with: the burst of retries an outage gets before Ratio binds; 0 means
	// 100.
	Max float64
	// MinRate, when positive, is a floor: with the bucket empty, up to
	// MinRate retries per second are still allowed, in bursts of up to one
	// second's worth. It must be between one retry a century and one a
	// nanosecond.
	MinRate float64

	spent atomic.Int64 // micro-tokens below full: zero is a full bucket
	// The floor is a generic cell rate algorithm: tat is the theoretical
	// time, in nanoseconds since budgetEpoch, at which the next floor retry
	// is due; up to a second's burst ahead of now is allowed.
	tat atomic.Int64
}

// microTokens is the fixed-point scale of a Budget's balance: one retry
// costs one token, a million micro-tokens. Integers keep deposits and
// withdrawals exact, whatever the ratio.
const microTokens = 1_000_000

// budgetEpoch is the origin of the floor's monotonic clock.
var budgetEpoch = time.Now()

// check returns what is wrong with b's fields, or nil.
func (b *Budget) check() error {
	const century = 100 * 365.25 * 24 * 60 * 60 // seconds
	switch {
	case !(b.Ratio >= 0 && b.Ratio <= 1):
		return fmt.Errorf("Budget.Ratio %v is not between 0 and 1", b.Ratio)
	case !(b.Max >= 0 && b.Max <= math.MaxInt64/microTokens):
		return fmt.Errorf("Budget.Max %v is not a non-negative number of tokens", b.Max)
	case b.MinRate != 0 && !(b.MinRate >= 1/century && b.MinRate <= float64(time.Second)):
		return fmt.Errorf("Budget.MinRate %v is not between one retry a century (%.3g/s) and one a nanosecond (1e9/s)", b.MinRate, 1/century)
	}
	return nil
}

// limits returns the micro-tokens a first attempt deposits and the most
// the bucket holds, with the defaults for zero fields.
func (b *Budget) limits() (credit, most int64) {
	credit, most = 100_000, 100*microTokens
	if b.Ratio != 0 {
		credit = int64(math.Round(b.Ratio * microTokens))
	}
	if b.Max != 0 {
		most = int64(math.Round(b.Max * microTokens))
	}
	return credit, most
}

// WithBudget makes the retry draw on b: each operation deposits into b when
// its first attempt starts, and each retry must withdraw from it or give up
// with a [*RetryError] whose Reason is [ErrBudgetExhausted]. Share one b
// among every retry that loads the same database. Attach it to the
// outermost retry of an operation only: each retry it is attached to
// deposits. It panics if b is nil or one of its fields is out of range.
func WithBudget(b *Budget) RetryOption {
	if b == nil {
		panic("dbop: WithBudget(nil)")
	}
	if err := b.check(); err != nil {
		panic("dbop: WithBudget: " + err.Error())
	}
	return func(r *retrier) { r.budget = b }
}

// deposit credits the first attempt of an operation. A full bucket is only
// read, so healthy traffic does not contend on it.
func (b *Budget) deposit() {
	credit, _ := b.limits()
	if credit == 0 {
		return
	}
	for {
		cur := b.spent.Load()
		if cur <= 0 {
			return
		}
		if b.spent.CompareAndSwap(cur, max(cur-credit, 0)) {
			return
		}
	}
}

// withdraw reports whether a retry may go ahead, paying for it if so: from
// the bucket, or else from the floor.
func (b *Budget) withdraw() bool {
	_, most := b.limits()
	for {
		cur := b.spent.Load()
		if most-cur < microTokens {
			break
		}
		if b.spent.CompareAndSwap(cur, cur+microTokens) {
			return true
		}
	}
	if b.MinRate <= 0 {
		return false
	}
	interval := max(int64(float64(time.Second)/b.MinRate), 1)
	tolerance := (max(int64(b.MinRate), 1) - 1) * interval
	now := int64(time.Since(budgetEpoch))
	for {
		tat := b.tat.Load()
		next := now
		if tat != 0 { // zero: the floor has not been used yet
			next = max(tat, now)
		}
		if next-now > tolerance {
			return false
		}
		if b.tat.CompareAndSwap(tat, next+interval) {
			return true
		}
	}
}
