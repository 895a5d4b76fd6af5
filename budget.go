package dbop

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// ErrBudgetExhausted is the Reason of the [*RetryError] a [WithRetry]
// returns when its [Budget] refused a retry.
var ErrBudgetExhausted = errors.New("dbop: retry budget exhausted")

// A Budget limits retries across every operation that shares it, so that
// when the database is down a fleet of callers does not multiply its load by
// the attempt limit: a retry storm is what keeps a recovering database down.
// Attach one to many retries with [WithBudget].
//
// The model is a token bucket, as in gRPC's retry throttling and Finagle's
// retry budget. Each operation's first attempt deposits ratio tokens, up to
// a maximum; each retry withdraws one token and is refused, ending the
// operation with [ErrBudgetExhausted], when less than one is left. So over
// any stretch of time, retries never exceed the maximum plus ratio times
// the operations started: with a ratio of 0.1, retries add at most about
// 10% to the load however long the outage lasts, and when it ends, new
// operations refill the bucket and retries resume. An optional floor
// ([BudgetMinRate]) still allows a few retries per second when the bucket is
// empty, for callers too quiet to refill it.
//
// The zero value is ready to use and behaves exactly as
// NewBudget(DefaultBudgetRatio): a ratio of [DefaultBudgetRatio], at most
// [DefaultBudgetMax] tokens, no floor. So a Budget can be a struct field or
// a package variable with no constructor. A Budget starts full. It is safe
// for concurrent use, lock-free, and costs no allocation; it must not be
// copied after first use. Its clock, for the floor only, is [time.Now].
type Budget struct {
	spent atomic.Int64 // micro-tokens below full: zero is a full bucket

	// Set by NewBudget only; a zero Budget reads the defaults instead
	// (see limits).
	configured bool
	credit     int64 // micro-tokens each first attempt deposits
	max        int64 // micro-tokens the bucket holds at most

	// The floor is a generic cell rate algorithm: tat is the theoretical
	// time, in nanoseconds since epoch, at which the next floor retry is
	// due; up to tolerance ahead of now is allowed, which is the burst.
	tat       atomic.Int64
	interval  int64 // nanoseconds between floor retries; 0 means no floor
	tolerance int64
	epoch     time.Time
}

// microTokens is the fixed-point scale of a Budget's balance: one retry
// costs one token, a million micro-tokens. Integers keep deposits and
// withdrawals exact, whatever the ratio.
const microTokens = 1_000_000

// DefaultBudgetMax is the number of tokens a [Budget] holds at most when no
// [BudgetMax] option is given: after a quiet spell, an outage gets this many
// retries on top of ratio times the operations started.
const DefaultBudgetMax = 100

// DefaultBudgetRatio is the ratio of the zero [Budget]: each operation's
// first attempt deposits a tenth of a token, so that during an outage
// retries add at most about 10% to the load, beyond the first
// [DefaultBudgetMax]. Pass it to [NewBudget] to change only the options.
const DefaultBudgetRatio = 0.1

// defaultCredit is DefaultBudgetRatio in micro-tokens, as NewBudget rounds
// it.
const defaultCredit = DefaultBudgetRatio * microTokens

// A BudgetOption configures [NewBudget].
type BudgetOption func(*Budget)

// NewBudget returns a full [Budget] where each operation's first attempt
// deposits ratio tokens and each retry costs one. A zero Budget is
// NewBudget(DefaultBudgetRatio). It panics unless 0 <= ratio <= 1 or if an
// option is invalid.
func NewBudget(ratio float64, opts ...BudgetOption) *Budget {
	if !(ratio >= 0 && ratio <= 1) {
		panic(fmt.Sprintf("dbop: NewBudget(%v): the ratio must be between 0 and 1", ratio))
	}
	b := &Budget{
		configured: true,
		credit:     int64(math.Round(ratio * microTokens)),
		max:        DefaultBudgetMax * microTokens,
		epoch:      time.Now(),
	}
	for i, o := range opts {
		if o == nil {
			panic(fmt.Sprintf("dbop: NewBudget: option %d of %d is nil", i+1, len(opts)))
		}
		o(b)
	}
	return b
}

// limits returns the micro-tokens a first attempt deposits and the bucket
// holds at most: b's own when NewBudget made it, the defaults for a zero
// Budget.
func (b *Budget) limits() (credit, max int64) {
	if !b.configured {
		return defaultCredit, DefaultBudgetMax * microTokens
	}
	return b.credit, b.max
}

// BudgetMax sets the number of tokens a [Budget] holds at most, and starts
// with: the burst of retries an outage gets before the ratio binds. The
// default is [DefaultBudgetMax]. It panics if tokens is negative or not
// finite.
func BudgetMax(tokens float64) BudgetOption {
	if !(tokens >= 0 && tokens <= math.MaxInt64/microTokens) {
		panic(fmt.Sprintf("dbop: BudgetMax(%v): the maximum must be a non-negative number of tokens", tokens))
	}
	return func(b *Budget) { b.max = int64(math.Round(tokens * microTokens)) }
}

// BudgetMinRate sets a floor: when the bucket is empty, up to perSecond
// retries per second are still allowed, in bursts of up to one second's
// worth. Without it an empty bucket refuses every retry until first
// attempts refill it. It panics unless perSecond is between one retry a
// century and one a nanosecond, the range its clock arithmetic can hold.
func BudgetMinRate(perSecond float64) BudgetOption {
	const century = 100 * 365.25 * 24 * 60 * 60 // seconds
	if !(perSecond >= 1/century && perSecond <= float64(time.Second)) {
		panic(fmt.Sprintf("dbop: BudgetMinRate(%v): the rate must be between one retry a century (%.3g/s) and one a nanosecond (1e9/s)", perSecond, 1/century))
	}
	return func(b *Budget) {
		b.interval = max(int64(float64(time.Second)/perSecond), 1)
		burst := max(int64(perSecond), 1)
		b.tolerance = (burst - 1) * b.interval
	}
}

// WithBudget makes the retry draw on b: each operation deposits into b when
// its first attempt starts, and each retry must withdraw from it or give up
// with a [*RetryError] whose Reason is [ErrBudgetExhausted]. Share one b
// among every retry that loads the same database. Attach it to the
// outermost retry of an operation only: each retry it is attached to
// deposits. It panics if b is nil.
func WithBudget(b *Budget) RetryOption {
	if b == nil {
		panic("dbop: WithBudget(nil)")
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
	if b.interval == 0 {
		return false
	}
	now := int64(time.Since(b.epoch))
	for {
		tat := b.tat.Load()
		next := max(tat, now)
		if next-now > b.tolerance {
			return false
		}
		if b.tat.CompareAndSwap(tat, next+b.interval) {
			return true
		}
	}
}
