package dbop

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// A Backoff computes the delay before a retry. It is a pure function: given
// the retry number n (1 before the second attempt, 2 before the third, …), the
// delay chosen before the previous retry (0 when n is 1) and a uniformly
// random 64-bit word, it returns the delay. Because it keeps no state, one
// Backoff is safe to share by every goroutine running a pipeline, and a
// schedule is reproducible when the random words are (see [WithRand], and
// github.com/dbop-go/dbop/dboptest.Schedule to print one).
//
// A Backoff never returns a negative delay, whatever its inputs.
type Backoff interface {
	Delay(n int, prev time.Duration, random uint64) time.Duration
}

// capped is implemented by the Backoffs that never wait longer than a cap
// their user set: the max of [Exponential] and [DecorrelatedJitter], and the
// jitter wrappers around one of them. [Jitter] keeps within it.
type capped interface {
	// maxDelay returns the longest delay the Backoff returns, and false
	// when it promises none.
	maxDelay() (time.Duration, bool)
}

// maxDelayOf returns b's cap, and false when b has none.
func maxDelayOf(b Backoff) (time.Duration, bool) {
	if c, ok := b.(capped); ok {
		return c.maxDelay()
	}
	return 0, false
}

// Exponential returns a [Backoff] that waits base before the first retry and
// doubles the wait before each later one, up to max: base·2^(n-1), capped at
// max. A retry number n <= 0 is treated as 1. It ignores the random word;
// wrap it in [FullJitter] or [Jitter] to spread concurrent retries apart.
//
// It panics if base <= 0 or max < base.
func Exponential(base, max time.Duration) Backoff {
	checkBaseMax("Exponential", base, max)
	return exponential{base: base, max: max}
}

type exponential struct{ base, max time.Duration }

func (e exponential) maxDelay() (time.Duration, bool) { return e.max, true }

func (e exponential) Delay(n int, _ time.Duration, _ uint64) time.Duration {
	shift := max(n, 1) - 1
	// base<<shift <= max  ⇔  base <= max>>shift, and the right side cannot
	// overflow, so the shift below never does either.
	if shift >= 63 || e.base > e.max>>shift {
		return e.max
	}
	return e.base << shift
}

// Constant returns a [Backoff] that always waits d. Constant(0) retries
// immediately.
//
// It panics if d < 0.
func Constant(d time.Duration) Backoff {
	if d < 0 {
		panic(fmt.Sprintf("dbop: Constant: delay must not be negative, got %v", d))
	}
	return constant{d: d}
}

type constant struct{ d time.Duration }

func (c constant) Delay(int, time.Duration, uint64) time.Duration { return c.d }

// FullJitter returns a [Backoff] that waits a uniformly random time between
// zero and the delay b chooses, both included ("full jitter"). b receives a
// random word derived from the one FullJitter uses, so randomised backoffs
// such as [DecorrelatedJitter] can be wrapped.
//
// It panics if b is nil.
func FullJitter(b Backoff) Backoff {
	if b == nil {
		panic("dbop: FullJitter: the Backoff must not be nil")
	}
	return fullJitter{b: b}
}

type fullJitter struct{ b Backoff }

// maxDelay is b's: a full jitter never exceeds the delay b chose.
func (f fullJitter) maxDelay() (time.Duration, bool) { return maxDelayOf(f.b) }

func (f fullJitter) Delay(n int, prev time.Duration, random uint64) time.Duration {
	d := max(f.b.Delay(n, prev, mix(random)), 0)
	return uniform(0, d, random)
}

// Jitter returns a [Backoff] that spreads the delay d chosen by b uniformly
// over [d·(1-fraction), d·(1+fraction)]: Jitter(b, 0.1) varies each delay by
// up to ±10%. The range is cut at b's cap, so that jitter never makes a
// retry wait longer than the max given to [Exponential] or
// [DecorrelatedJitter] (wrapped in [FullJitter] or Jitter or not): a delay
// at the cap is spread over [max·(1-fraction), max]. Otherwise the upper end
// saturates at the largest [time.Duration]. b receives a random word derived
// from the one Jitter uses, as with [FullJitter].
//
// It panics if b is nil or fraction is not in [0, 1] (including NaN).
func Jitter(b Backoff, fraction float64) Backoff {
	if b == nil {
		panic("dbop: Jitter: the Backoff must not be nil")
	}
	if !(fraction >= 0 && fraction <= 1) { // also catches NaN
		panic(fmt.Sprintf("dbop: Jitter: fraction must be in [0, 1], got %v", fraction))
	}
	j := jitter{b: b, fraction: fraction}
	j.ceiling, j.capped = maxDelayOf(b)
	if fraction < 1 {
		// fraction·2^64 is exact and below 2^64; the conversion truncates,
		// so the spread computed from scale never exceeds d·fraction.
		j.scale = uint64(fraction * (1 << 64))
	}
	return j
}

type jitter struct {
	b        Backoff
	fraction float64       // in [0, 1]; kept for == and for printing
	scale    uint64        // floor(fraction·2^64) when fraction < 1
	ceiling  time.Duration // b's cap, when capped
	capped   bool
}

func (j jitter) Delay(n int, prev time.Duration, random uint64) time.Duration {
	d := max(j.b.Delay(n, prev, mix(random)), 0)
	spread := d
	if j.fraction < 1 {
		hi, _ := bits.Mul64(uint64(d), j.scale)
		spread = time.Duration(hi) // floor(d·scale/2^64) <= d
	}
	lo, hi := d-spread, addSat(d, spread)
	if j.capped {
		// Cut the range rather than clamp the delay, so that retries at
		// the cap stay spread apart instead of piling up on it.
		hi = max(min(hi, j.ceiling), 0)
		lo = min(lo, hi)
	}
	return uniform(lo, hi, random)
}

// maxDelay is b's: Jitter keeps within it.
func (j jitter) maxDelay() (time.Duration, bool) { return j.ceiling, j.capped }

// DecorrelatedJitter returns a [Backoff] using AWS's "decorrelated jitter":
// each delay is uniformly random between base and three times the previous
// delay (base when that is shorter, as before the first retry), capped at
// max. It ignores the retry number.
//
// It panics if base <= 0 or max < base.
func DecorrelatedJitter(base, max time.Duration) Backoff {
	checkBaseMax("DecorrelatedJitter", base, max)
	return decorrelatedJitter{base: base, max: max}
}

type decorrelatedJitter struct{ base, max time.Duration }

func (dj decorrelatedJitter) maxDelay() (time.Duration, bool) { return dj.max, true }

func (dj decorrelatedJitter) Delay(_ int, prev time.Duration, random uint64) time.Duration {
	prev = max(prev, dj.base)
	hi := time.Duration(math.MaxInt64)
	if prev <= math.MaxInt64/3 {
		hi = 3 * prev
	}
	return min(uniform(dj.base, hi, random), dj.max)
}

// checkBaseMax panics unless 0 < base <= maxDelay, naming fn in the message.
func checkBaseMax(fn string, base, maxDelay time.Duration) {
	if base <= 0 {
		panic(fmt.Sprintf("dbop: %s: base delay must be positive, got %v", fn, base))
	}
	if maxDelay < base {
		panic(fmt.Sprintf("dbop: %s: max delay must be at least the base delay %v, got %v", fn, base, maxDelay))
	}
}

// uniform maps random onto [lo, hi] (0 <= lo <= hi) by multiplication rather
// than modulo: the result is lo when random is 0 and hi when it is
// math.MaxUint64.
func uniform(lo, hi time.Duration, random uint64) time.Duration {
	// hi-lo+1 <= 2^63, so it fits in a uint64.
	off, _ := bits.Mul64(random, uint64(hi-lo)+1)
	return lo + time.Duration(off)
}

// addSat returns a+b for non-negative a and b, saturating at the largest
// time.Duration.
func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// mix derives a second random word from the first (one step of splitmix64),
// for a wrapped Backoff, so that it does not see the word its wrapper uses.
// It is a bijection: a uniform word gives a uniform word.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
