package dbop

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const maxDuration = time.Duration(math.MaxInt64)

// backoffFunc is a fake Backoff; it is not comparable, which is fine in tests
// that never compare it.
type backoffFunc func(n int, prev time.Duration, random uint64) time.Duration

func (f backoffFunc) Delay(n int, prev time.Duration, random uint64) time.Duration {
	return f(n, prev, random)
}

// schedule returns the first n delays a retry loop using b waits, feeding
// each back to b as the previous one, with the random words from src (the
// global generator when src is nil): what dboptest.Schedule returns, which
// a test of package dbop cannot import.
func schedule(b Backoff, n int, src rand.Source) []time.Duration {
	random := rand.Uint64
	if src != nil {
		random = src.Uint64
	}
	var delays []time.Duration
	var prev time.Duration
	for i := range n {
		prev = max(b.Delay(i+1, prev, random()), 0)
		delays = append(delays, prev)
	}
	return delays
}

func TestExponentialSchedule(t *testing.T) {
	tests := []struct {
		name      string
		base, max time.Duration
		want      []time.Duration
	}{
		{
			name: "doubles up to the cap",
			base: 100 * time.Millisecond, max: time.Second,
			want: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second},
		},
		{
			name: "cap equal to base",
			base: time.Second, max: time.Second,
			want: []time.Duration{time.Second, time.Second, time.Second},
		},
		{
			name: "cap not a power-of-two multiple",
			base: 3 * time.Millisecond, max: 10 * time.Millisecond,
			want: []time.Duration{3 * time.Millisecond, 6 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond},
		},
		{
			name: "one nanosecond",
			base: 1, max: maxDuration,
			want: []time.Duration{1, 2, 4, 8, 16},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := schedule(Exponential(tt.base, tt.max), len(tt.want), nil)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("schedule(Exponential(%v, %v)) mismatch (-want +got):\n%s", tt.base, tt.max, diff)
			}
		})
	}
}

func TestExponentialDelay(t *testing.T) {
	tests := []struct {
		name      string
		base, max time.Duration
		n         int
		want      time.Duration
	}{
		{"n 0 is n 1", time.Second, time.Minute, 0, time.Second},
		{"negative n is n 1", time.Second, time.Minute, -5, time.Second},
		{"min int n is n 1", time.Second, time.Minute, math.MinInt, time.Second},
		{"largest shift below the cap", 1, maxDuration, 63, 1 << 62},
		{"shift of 63 caps", 1, maxDuration, 64, maxDuration},
		{"max int n caps", 1, maxDuration, math.MaxInt, maxDuration},
		{"shift that would overflow caps", time.Hour, maxDuration, 40, maxDuration},
		{"just below the cap", 1, 1 << 10, 11, 1 << 10},
		{"just above the cap", 1, 1<<10 - 1, 11, 1<<10 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Exponential(tt.base, tt.max).Delay(tt.n, 0, 0)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Exponential(%v, %v).Delay(%d) mismatch (-want +got):\n%s", tt.base, tt.max, tt.n, diff)
			}
		})
	}
}

func TestConstant(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
	}{
		{"zero retries immediately", 0},
		{"one second", time.Second},
		{"largest duration", maxDuration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := []time.Duration{tt.d, tt.d, tt.d, tt.d}
			got := schedule(Constant(tt.d), len(want), rand.NewPCG(1, 2))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("schedule(Constant(%v)) mismatch (-want +got):\n%s", tt.d, diff)
			}
		})
	}
}

// TestJitterBounds checks the exact ends of each randomised Backoff (random
// word 0 gives the lower bound, math.MaxUint64 the upper one) and that many
// random words stay between them.
func TestJitterBounds(t *testing.T) {
	tests := []struct {
		name   string
		b      Backoff
		n      int
		prev   time.Duration
		lo, hi time.Duration
	}{
		{"full jitter", FullJitter(Exponential(time.Second, time.Minute)), 3, 0, 0, 4 * time.Second},
		{"full jitter of zero", FullJitter(Constant(0)), 1, 0, 0, 0},
		{"full jitter of the largest duration", FullJitter(Constant(maxDuration)), 1, 0, 0, maxDuration},
		{"jitter half", Jitter(Constant(time.Second), 0.5), 1, 0, 500 * time.Millisecond, 1500 * time.Millisecond},
		{"jitter tenth", Jitter(Constant(time.Second), 0.1), 1, 0, 900 * time.Millisecond, 1100 * time.Millisecond},
		{"jitter zero fraction", Jitter(Constant(time.Second), 0), 1, 0, time.Second, time.Second},
		{"jitter whole fraction", Jitter(Constant(time.Second), 1), 1, 0, 0, 2 * time.Second},
		{"jitter saturates", Jitter(Constant(maxDuration), 0.5), 1, 0, maxDuration - maxDuration/2, maxDuration},
		{"jitter of an exponential below its cap", Jitter(Exponential(time.Second, 10*time.Second), 0.2), 3, 0, 3200 * time.Millisecond, 4800 * time.Millisecond},
		{"jitter of an exponential cut at its cap", Jitter(Exponential(time.Second, 9*time.Second), 0.2), 4, 0, 6400 * time.Millisecond, 9 * time.Second},
		{"jitter of an exponential at its cap", Jitter(Exponential(time.Second, 10*time.Second), 0.2), 10, 0, 8 * time.Second, 10 * time.Second},
		{"whole jitter of an exponential at its cap", Jitter(Exponential(time.Second, 10*time.Second), 1), 10, 0, 0, 10 * time.Second},
		{"jitter of decorrelated at its cap", Jitter(DecorrelatedJitter(time.Second, 2*time.Second), 0.5), 2, time.Hour, time.Second, 2 * time.Second},
		{"decorrelated first retry", DecorrelatedJitter(100*time.Millisecond, time.Minute), 1, 0, 100 * time.Millisecond, 300 * time.Millisecond},
		{"decorrelated after 1s", DecorrelatedJitter(100*time.Millisecond, time.Minute), 5, time.Second, 100 * time.Millisecond, 3 * time.Second},
		{"decorrelated capped", DecorrelatedJitter(100*time.Millisecond, 2*time.Second), 5, time.Second, 100 * time.Millisecond, 2 * time.Second},
		{"decorrelated negative prev", DecorrelatedJitter(time.Second, time.Minute), 2, -time.Hour, time.Second, 3 * time.Second},
		{"decorrelated huge prev", DecorrelatedJitter(time.Second, maxDuration), 2, maxDuration, time.Second, maxDuration},
		// The inner Backoff draws from [1s, 3h] and is capped at 2s unless
		// its derived word is tiny, which mix(math.MaxUint64) is not.
		{"full jitter of decorrelated", FullJitter(DecorrelatedJitter(time.Second, 2*time.Second)), 2, time.Hour, 0, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ends := []time.Duration{tt.b.Delay(tt.n, tt.prev, 0), tt.b.Delay(tt.n, tt.prev, math.MaxUint64)}
			if diff := cmp.Diff([]time.Duration{tt.lo, tt.hi}, ends); diff != "" {
				t.Errorf("delays for random words 0 and MaxUint64 mismatch (-want +got):\n%s", diff)
			}
			src := rand.NewPCG(1, 2)
			for range 10000 {
				r := src.Uint64()
				if got := tt.b.Delay(tt.n, tt.prev, r); got < tt.lo || got > tt.hi {
					t.Fatalf("Delay(%d, %v, %#x) = %v, want within [%v, %v]", tt.n, tt.prev, r, got, tt.lo, tt.hi)
				}
			}
		})
	}
}

// TestJitterKeepsWithinTheCap checks that Jitter never waits longer than
// the cap of what it wraps, however deep, over many retry numbers and random
// words; and that where the delay it jitters reaches the cap, so does it.
func TestJitterKeepsWithinTheCap(t *testing.T) {
	const ceiling = 10 * time.Second
	exp := Exponential(100*time.Millisecond, ceiling)
	dj := DecorrelatedJitter(100*time.Millisecond, ceiling)
	tests := []struct {
		name    string
		b       Backoff
		reaches bool // delays come within 1% of the cap
	}{
		{"Jitter of Exponential", Jitter(exp, 0.2), true},
		{"whole Jitter of Exponential", Jitter(exp, 1), true},
		{"Jitter of DecorrelatedJitter", Jitter(dj, 0.5), true},
		{"Jitter of FullJitter", Jitter(FullJitter(exp), 0.5), true},
		{"Jitter of Jitter", Jitter(Jitter(exp, 0.5), 0.5), true},
		{"FullJitter of Jitter", FullJitter(Jitter(dj, 0.3)), false},
		{"Jitter of Jitter of FullJitter", Jitter(Jitter(FullJitter(dj), 1), 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, ok := maxDelayOf(tt.b); !ok || c != ceiling {
				t.Errorf("maxDelayOf = %v, %v; want %v, true", c, ok, ceiling)
			}
			src := rand.NewPCG(7, 8)
			var longest, prev time.Duration
			for i := range 100000 {
				n := i%20 + 1
				if n == 1 {
					prev = 0
				}
				d := tt.b.Delay(n, prev, src.Uint64())
				if d < 0 || d > ceiling {
					t.Fatalf("Delay(%d, %v) = %v, want within [0, %v]", n, prev, d, ceiling)
				}
				longest, prev = max(longest, d), d
			}
			if tt.reaches && longest < ceiling*99/100 {
				t.Errorf("the longest delay is %v, want close to the %v cap", longest, ceiling)
			}
		})
	}
	t.Run("no cap to keep", func(t *testing.T) {
		for _, b := range []Backoff{Constant(time.Second), Jitter(Constant(time.Second), 0.5), backoffFunc(func(int, time.Duration, uint64) time.Duration { return 0 })} {
			if c, ok := maxDelayOf(b); ok {
				t.Errorf("maxDelayOf(%T) = %v, true; want no cap", b, c)
			}
		}
	})
}

// TestJitterSpreads checks that the random words are used: a jittered
// schedule is not constant and covers both halves of its range.
func TestJitterSpreads(t *testing.T) {
	tests := []struct {
		name string
		b    Backoff
		mid  time.Duration
	}{
		{"full jitter", FullJitter(Constant(time.Second)), 500 * time.Millisecond},
		{"jitter", Jitter(Constant(time.Second), 0.5), time.Second},
		{"decorrelated", DecorrelatedJitter(time.Second, time.Minute), 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := rand.NewPCG(3, 4)
			var below, above int
			for range 1000 {
				if tt.b.Delay(1, 0, src.Uint64()) < tt.mid {
					below++
				} else {
					above++
				}
			}
			if below < 400 || above < 400 {
				t.Errorf("%d delays below %v and %d above, want about 500 each", below, tt.mid, above)
			}
		})
	}
}

// TestJitterWrapperDerivesRandomWord checks that a jitter wrapper passes its
// inner Backoff a word different from its own, with n and prev unchanged.
func TestJitterWrapperDerivesRandomWord(t *testing.T) {
	type call struct {
		N      int
		Prev   time.Duration
		Random uint64
	}
	tests := []struct {
		name string
		wrap func(Backoff) Backoff
	}{
		{"FullJitter", FullJitter},
		{"Jitter", func(b Backoff) Backoff { return Jitter(b, 0.5) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []call
			inner := backoffFunc(func(n int, prev time.Duration, random uint64) time.Duration {
				got = append(got, call{n, prev, random})
				return time.Second
			})
			b := tt.wrap(inner)
			b.Delay(3, 7*time.Second, 0)
			b.Delay(4, 8*time.Second, math.MaxUint64)
			want := []call{{3, 7 * time.Second, mix(0)}, {4, 8 * time.Second, mix(math.MaxUint64)}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("calls to the inner Backoff mismatch (-want +got):\n%s", diff)
			}
			for _, c := range got {
				if c.Random == 0 || c.Random == math.MaxUint64 {
					t.Errorf("inner Backoff received the wrapper's own word %#x", c.Random)
				}
			}
		})
	}
}

// TestJitterWrapperClampsNegativeInner checks that a misbehaving inner Backoff
// cannot make a wrapper return a negative delay.
func TestJitterWrapperClampsNegativeInner(t *testing.T) {
	negative := backoffFunc(func(int, time.Duration, uint64) time.Duration { return math.MinInt64 })
	tests := []struct {
		name string
		b    Backoff
	}{
		{"FullJitter", FullJitter(negative)},
		{"Jitter", Jitter(negative, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []time.Duration{tt.b.Delay(1, 0, 0), tt.b.Delay(1, 0, math.MaxUint64)}
			if diff := cmp.Diff([]time.Duration{0, 0}, got); diff != "" {
				t.Errorf("delays mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoffComparable(t *testing.T) {
	tests := []struct {
		name      string
		a, b      Backoff
		wantEqual bool
	}{
		{"exponential", Exponential(time.Second, time.Minute), Exponential(time.Second, time.Minute), true},
		{"exponential differs", Exponential(time.Second, time.Minute), Exponential(time.Second, time.Hour), false},
		{"constant", Constant(time.Second), Constant(time.Second), true},
		{"full jitter", FullJitter(Constant(time.Second)), FullJitter(Constant(time.Second)), true},
		{"jitter", Jitter(Exponential(time.Second, time.Minute), 0.1), Jitter(Exponential(time.Second, time.Minute), 0.1), true},
		{"jitter differs", Jitter(Exponential(time.Second, time.Minute), 0.1), Jitter(Exponential(time.Second, time.Minute), 0.2), false},
		{"decorrelated", DecorrelatedJitter(time.Second, time.Minute), DecorrelatedJitter(time.Second, time.Minute), true},
		{"different kinds", DecorrelatedJitter(time.Second, time.Minute), Exponential(time.Second, time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a == tt.b; got != tt.wantEqual {
				t.Errorf("%#v == %#v is %v, want %v", tt.a, tt.b, got, tt.wantEqual)
			}
		})
	}
}

func TestBackoffDoesNotAllocate(t *testing.T) {
	tests := []struct {
		name string
		b    Backoff
	}{
		{"Exponential", Exponential(time.Millisecond, time.Second)},
		{"Constant", Constant(time.Second)},
		{"FullJitter", FullJitter(Exponential(time.Millisecond, time.Second))},
		{"Jitter", Jitter(Exponential(time.Millisecond, time.Second), 0.25)},
		{"DecorrelatedJitter", DecorrelatedJitter(time.Millisecond, time.Second)},
		{"nested", Jitter(FullJitter(DecorrelatedJitter(time.Millisecond, time.Second)), 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n int
			var prev time.Duration
			random := uint64(1)
			allocs := testing.AllocsPerRun(100, func() {
				n++
				random = mix(random)
				prev = tt.b.Delay(n, prev, random)
			})
			if allocs != 0 {
				t.Errorf("Delay allocates %v times per call, want 0", allocs)
			}
		})
	}
}

func TestBackoffPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
		want []string // substrings of the panic message
	}{
		{"Exponential zero base", func() { Exponential(0, time.Second) }, []string{"dbop: Exponential:", "base", "0s"}},
		{"Exponential negative base", func() { Exponential(-time.Second, time.Second) }, []string{"dbop: Exponential:", "base", "-1s"}},
		{"Exponential max below base", func() { Exponential(time.Second, time.Millisecond) }, []string{"dbop: Exponential:", "max", "1ms"}},
		{"Constant negative", func() { Constant(-time.Nanosecond) }, []string{"dbop: Constant:", "-1ns"}},
		{"FullJitter nil", func() { FullJitter(nil) }, []string{"dbop: FullJitter:", "nil"}},
		{"Jitter nil", func() { Jitter(nil, 0.5) }, []string{"dbop: Jitter:", "nil"}},
		{"Jitter NaN", func() { Jitter(Constant(time.Second), math.NaN()) }, []string{"dbop: Jitter:", "fraction", "NaN"}},
		{"Jitter negative", func() { Jitter(Constant(time.Second), -0.1) }, []string{"dbop: Jitter:", "fraction", "-0.1"}},
		{"Jitter above one", func() { Jitter(Constant(time.Second), 1.5) }, []string{"dbop: Jitter:", "fraction", "1.5"}},
		{"Jitter infinite", func() { Jitter(Constant(time.Second), math.Inf(1)) }, []string{"dbop: Jitter:", "fraction", "+Inf"}},
		{"DecorrelatedJitter zero base", func() { DecorrelatedJitter(0, time.Second) }, []string{"dbop: DecorrelatedJitter:", "base", "0s"}},
		{"DecorrelatedJitter negative base", func() { DecorrelatedJitter(-time.Minute, time.Second) }, []string{"dbop: DecorrelatedJitter:", "base", "-1m0s"}},
		{"DecorrelatedJitter max below base", func() { DecorrelatedJitter(time.Second, -time.Second) }, []string{"dbop: DecorrelatedJitter:", "max", "-1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := panicMessage(tt.f)
			if msg == "" {
				t.Fatal("did not panic")
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("panic message %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// panicMessage runs f and returns what it panicked with, or "" if it did not.
func panicMessage(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

// The fuzzed strategies, chosen by kind % numKinds.
const (
	kindExponential = iota
	kindConstant
	kindFullJitter         // of Exponential
	kindJitter             // of Exponential
	kindDecorrelated       //
	kindFullJitterDecorr   // FullJitter of DecorrelatedJitter
	kindJitterDecorrelated // Jitter of DecorrelatedJitter
	numKinds
)

// FuzzBackoff checks that no strategy returns a negative delay or exceeds its
// cap, jittered ones included, for any retry number, previous delay and
// random word. Kinds whose
// constructor arguments are invalid are skipped.
func FuzzBackoff(f *testing.F) {
	const maxInt64, minInt64 = math.MaxInt64, math.MinInt64
	for kind := range uint8(numKinds) {
		f.Add(kind, int64(1), int64(1), 0.0, 1, int64(0), uint64(0))
		f.Add(kind, int64(1), int64(maxInt64), 1.0, math.MaxInt, int64(maxInt64), uint64(math.MaxUint64))
		f.Add(kind, int64(maxInt64), int64(maxInt64), 1.0, 64, int64(minInt64), uint64(math.MaxUint64))
		f.Add(kind, int64(time.Second), int64(time.Minute), 0.5, 0, int64(-1), uint64(1))
		f.Add(kind, int64(time.Millisecond), int64(maxInt64/3+1), 0.999999, 63, int64(maxInt64/3+1), uint64(1<<63))
		f.Add(kind, int64(3), int64(maxInt64-1), 0.1, math.MinInt, int64(maxInt64/3), uint64(math.MaxUint64-1))
		f.Add(kind, int64(0), int64(0), 0.0, 1, int64(0), uint64(0))
		f.Add(kind, int64(minInt64), int64(minInt64), math.NaN(), -1, int64(minInt64), uint64(0))
	}
	f.Fuzz(func(t *testing.T, kind uint8, base, maxD int64, fraction float64, n int, prev int64, random uint64) {
		kind %= numKinds
		b := backoffFor(t, kind, time.Duration(base), time.Duration(maxD), fraction)
		got := b.Delay(n, time.Duration(prev), random)
		if again := b.Delay(n, time.Duration(prev), random); again != got {
			t.Fatalf("Delay is not pure: %v then %v", got, again)
		}
		if got < 0 {
			t.Fatalf("negative delay %v", got)
		}

		lo, hi := time.Duration(0), time.Duration(maxD)
		switch kind {
		case kindExponential:
			exp := expectedExponential(base, maxD, n)
			lo, hi = exp, exp
		case kindConstant:
			lo, hi = time.Duration(base), time.Duration(base)
		case kindFullJitter:
			hi = expectedExponential(base, maxD, n)
		case kindJitter:
			checkJitter(t, got, expectedExponential(base, maxD, n), fraction)
		case kindDecorrelated:
			lo = time.Duration(base)
			if p := max(prev, base); p <= math.MaxInt64/3 {
				hi = min(hi, time.Duration(3*p))
			}
		}
		if got < lo || got > hi {
			t.Fatalf("delay %v, want within [%v, %v]", got, lo, hi)
		}
	})
}

// backoffFor builds the fuzzed strategy, skipping invalid arguments.
func backoffFor(t *testing.T, kind uint8, base, maxD time.Duration, fraction float64) Backoff {
	if kind == kindConstant {
		if base < 0 {
			t.Skip("negative constant delay")
		}
		return Constant(base)
	}
	if base <= 0 || maxD < base {
		t.Skip("invalid base or max")
	}
	if (kind == kindJitter || kind == kindJitterDecorrelated) && !(fraction >= 0 && fraction <= 1) {
		t.Skip("invalid fraction")
	}
	switch kind {
	case kindExponential:
		return Exponential(base, maxD)
	case kindFullJitter:
		return FullJitter(Exponential(base, maxD))
	case kindJitter:
		return Jitter(Exponential(base, maxD), fraction)
	case kindDecorrelated:
		return DecorrelatedJitter(base, maxD)
	case kindFullJitterDecorr:
		return FullJitter(DecorrelatedJitter(base, maxD))
	case kindJitterDecorrelated:
		return Jitter(DecorrelatedJitter(base, maxD), fraction)
	}
	panic(fmt.Sprintf("unknown kind %d", kind))
}

// expectedExponential is an oracle for Exponential: min(base·2^(n-1), maxD)
// computed with big integers, n <= 0 counting as 1.
func expectedExponential(base, maxD int64, n int) time.Duration {
	shift := max(n, 1) - 1
	if shift >= 64 { // base >= 1, so base·2^63 > math.MaxInt64 >= maxD
		return time.Duration(maxD)
	}
	d := new(big.Int).Lsh(big.NewInt(base), uint(shift))
	if d.Cmp(big.NewInt(maxD)) > 0 {
		return time.Duration(maxD)
	}
	return time.Duration(d.Int64())
}

// checkJitter fails unless |got - d| <= d·fraction, computed exactly.
func checkJitter(t *testing.T, got, d time.Duration, fraction float64) {
	t.Helper()
	dist := got - d // both in [0, math.MaxInt64]: no overflow
	if dist < 0 {
		dist = -dist
	}
	if exactInt(int64(dist)).Cmp(exactProduct(int64(d), fraction)) > 0 {
		t.Fatalf("delay %v is further than %v·%v from %v", got, d, fraction, d)
	}
}

// exactInt returns x as a big.Float without rounding.
func exactInt(x int64) *big.Float { return new(big.Float).SetPrec(256).SetInt64(x) }

// exactProduct returns x·f without rounding: 63 by 53 significant bits fit in
// 256.
func exactProduct(x int64, f float64) *big.Float {
	return exactInt(x).Mul(exactInt(x), new(big.Float).SetFloat64(f))
}

// FuzzJitterNeverExceedsCap checks Jitter's promise for any retry number,
// previous delay and random word: Jitter(Exponential(base, max), fraction)
// never waits longer than max, nor does Jitter around any stack of jitter
// wrappers over an Exponential or a DecorrelatedJitter; and it still keeps
// within fraction of the delay it jitters.
func FuzzJitterNeverExceedsCap(f *testing.F) {
	const maxInt64 = math.MaxInt64
	for wrap := range uint8(8) {
		f.Add(wrap, int64(time.Second), int64(10*time.Second), 0.2, 0.5, 10, int64(0), uint64(math.MaxUint64))
		f.Add(wrap, int64(1), int64(1), 1.0, 1.0, 1, int64(0), uint64(math.MaxUint64))
		f.Add(wrap, int64(1), int64(maxInt64), 1.0, 0.0, 64, int64(maxInt64), uint64(math.MaxUint64))
		f.Add(wrap, int64(3), int64(maxInt64/3+1), 0.999999, 0.1, 63, int64(maxInt64/3+1), uint64(1<<63))
		f.Add(wrap, int64(time.Millisecond), int64(time.Second), 0.0, 1.0, math.MinInt, int64(-1), uint64(0))
	}
	f.Fuzz(func(t *testing.T, wrap uint8, base, maxD int64, fraction, inner float64, n int, prev int64, random uint64) {
		if base <= 0 || maxD < base {
			t.Skip("invalid base or max")
		}
		if !(fraction >= 0 && fraction <= 1) || !(inner >= 0 && inner <= 1) {
			t.Skip("invalid fraction")
		}
		var b Backoff = Exponential(time.Duration(base), time.Duration(maxD))
		if wrap&1 != 0 {
			b = DecorrelatedJitter(time.Duration(base), time.Duration(maxD))
		}
		switch wrap >> 1 % 4 {
		case 1:
			b = FullJitter(b)
		case 2:
			b = Jitter(b, inner)
		case 3:
			b = FullJitter(Jitter(b, inner))
		}
		j := Jitter(b, fraction)
		got := j.Delay(n, time.Duration(prev), random)
		if got < 0 || got > time.Duration(maxD) {
			t.Fatalf("%#v.Delay(%d, %v, %#x) = %v, want within [0, %v]", j, n, time.Duration(prev), random, got, time.Duration(maxD))
		}
		if d := max(b.Delay(n, time.Duration(prev), mix(random)), 0); got > d {
			// Cut at the cap, the range still starts within fraction of d.
			checkJitter(t, got, d, fraction)
		} else if exactInt(int64(d-got)).Cmp(exactProduct(int64(d), fraction)) > 0 {
			t.Fatalf("delay %v is further than %v·%v below %v", got, d, fraction, d)
		}
	})
}
