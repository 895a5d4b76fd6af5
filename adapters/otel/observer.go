package otel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the tracer and the meter the
// Observer uses.
const ScopeName = "github.com/dbop-go/dbop/adapters/otel"

// Attribute keys the Observer sets, besides [semconv.ErrorTypeKey] and
// [semconv.DBSystemNameKey]. The package documentation says where each one
// appears.
const (
	OperationNameKey = attribute.Key("dbop.operation.name") // string: the [dbop.Named] name
	AttemptKey       = attribute.Key("dbop.attempt")        // int: the attempt number, from 1
	AttemptsKey      = attribute.Key("dbop.attempts")       // int: attempts an operation made
	OutcomeKey       = attribute.Key("dbop.outcome")        // string: how an attempt or operation ended
	VerdictKey       = attribute.Key("dbop.verdict")        // string: the [dbop.Verdict] of the error
	RetryDelayKey    = attribute.Key("dbop.retry.delay")    // float: the wait before the next attempt, in seconds

	// ResolutionKey and ResolutionDurationKey are the attributes of the
	// CommitResolvedEvent: what the resolution of a lost COMMIT answer
	// found (committed, not-written, aborted, unresolved), and how long it
	// took, in seconds.
	ResolutionKey         = attribute.Key("dbop.commit.resolution")
	ResolutionDurationKey = attribute.Key("dbop.commit.resolution.duration")
)

// CommitResolvedEvent is the event added to the attempt span when a
// transaction scope with ResolveCommit resolved a COMMIT whose answer was
// lost (scopes.OnCommitResolved).
const CommitResolvedEvent = "dbop.commit_resolved"

// Span names. An operation span is named after the operation ([dbop.Named]),
// or defaultOperationSpan when it has no name.
const (
	defaultOperationSpan = "dbop.operation"
	attemptSpan          = "dbop.attempt"
)

// Outcomes. An attempt ends in success, retry or error; an operation in
// success, error or exhausted.
const (
	outcomeSuccess   = "success"
	outcomeRetry     = "retry"
	outcomeError     = "error"
	outcomeExhausted = "exhausted"
)

// durationBuckets are the bucket boundaries, in seconds, of
// dbop.operation.duration: those the semantic conventions advise for
// client operation durations.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// successTable bounds the attempt numbers whose success attributes are
// precomputed: those of attempt 1 to successTable-1.
const successTable = 16

// OverflowOperationName is the dbop.operation.name that metrics report for
// every operation name past an Observer's cap ([WithMaxOperationNames]).
const OverflowOperationName = "dbop.other"

// defaultMaxNames is the cap on distinct operation names in metrics when
// [WithMaxOperationNames] does not set one.
const defaultMaxNames = 100

// Observer is a [dbop.Observer] that records OpenTelemetry spans and metrics:
// a span per operation with a child span per attempt, and the counters and
// histogram listed in the package documentation. Create one with
// [NewObserver]; the zero Observer records nothing. An Observer is safe for
// concurrent use by any number of operations and must not be copied after
// first use.
type Observer struct {
	tracer     trace.Tracer
	operations metric.Int64Counter
	attempts   metric.Int64Counter
	retries    metric.Int64Counter
	duration   metric.Float64Histogram
	base       []attribute.KeyValue // from WithDBSystem and WithAttributes

	// Span attributes of a success after n attempts, for small n: the
	// attempt span's and the operation span's.
	attemptSucceeded [successTable][]attribute.KeyValue
	opSucceeded      [successTable][]attribute.KeyValue

	unnamed  *opInstr
	other    *opInstr // the metric attributes of names past the cap
	maxNames int
	names    sync.Map // operation name → *opInstr, at most maxNames of them
	mu       sync.Mutex
	numNames int         // len(names), guarded by mu
	full     atomic.Bool // numNames == maxNames
	overflow sync.Once   // reports the first name past the cap
}

var _ dbop.Observer = (*Observer)(nil)

// NewObserver returns an Observer configured by opts. Without
// [WithTracerProvider] or [WithMeterProvider] it uses the global providers
// as they are when NewObserver is called. An instrument that cannot be
// created is replaced by one that records nothing, and the error is reported
// to [otel.Handle].
func NewObserver(opts ...Option) *Observer {
	c := config{maxNames: defaultMaxNames}
	for _, opt := range opts {
		if opt != nil {
			opt(&c)
		}
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	o := &Observer{
		tracer:   c.tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		base:     c.attrs,
		maxNames: c.maxNames,
	}
	meter := c.mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	var err error
	o.operations, err = meter.Int64Counter("dbop.operations",
		metric.WithUnit("{operation}"),
		metric.WithDescription("Operations run by dbop.WithRetry, by outcome."))
	if failed("dbop.operations", err) {
		o.operations = metricnoop.Int64Counter{}
	}
	o.attempts, err = meter.Int64Counter("dbop.attempts",
		metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts made by dbop.WithRetry, by outcome."))
	if failed("dbop.attempts", err) {
		o.attempts = metricnoop.Int64Counter{}
	}
	o.retries, err = meter.Int64Counter("dbop.retries",
		metric.WithUnit("{retry}"),
		metric.WithDescription("Failed attempts dbop.WithRetry retried, by the verdict on their error."))
	if failed("dbop.retries", err) {
		o.retries = metricnoop.Int64Counter{}
	}
	o.duration, err = meter.Float64Histogram("dbop.operation.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of operations run by dbop.WithRetry, from the first attempt's start to the end, waits included."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	if failed("dbop.operation.duration", err) {
		o.duration = metricnoop.Float64Histogram{}
	}
	for n := 1; n < successTable; n++ {
		o.attemptSucceeded[n] = succeeded(AttemptKey, n)
		o.opSucceeded[n] = succeeded(AttemptsKey, n)
	}
	o.unnamed = o.newOpInstr("", "")
	o.other = o.newOpInstr(OverflowOperationName, OverflowOperationName)
	return o
}

// failed reports err, if not nil, from creating the named instrument to
// [otel.Handle].
func failed(instrument string, err error) bool {
	if err == nil {
		return false
	}
	otel.Handle(fmt.Errorf("dbop/adapters/otel: creating instrument %s: %w", instrument, err))
	return true
}

// succeeded returns the span attributes of a success: key (the attempt
// number or the number of attempts) = n, and the outcome.
func succeeded(key attribute.Key, n int) []attribute.KeyValue {
	return []attribute.KeyValue{key.Int(n), OutcomeKey.String(outcomeSuccess)}
}

// lookup returns table[n] if it was precomputed, else builds it.
func lookup(table *[successTable][]attribute.KeyValue, key attribute.Key, n int) []attribute.KeyValue {
	if n > 0 && n < successTable {
		return table[n]
	}
	return succeeded(key, n)
}

// OperationStart starts the operation span, a child of the span in ctx, and
// returns a context carrying it.
func (o *Observer) OperationStart(ctx context.Context, name string) context.Context {
	if o.tracer == nil {
		return ctx
	}
	st := &opState{in: o.opInstr(name)}
	ctx = context.WithValue(ctx, stateKey{o}, st)
	ctx, st.op = o.tracer.Start(ctx, st.in.spanName, st.in.opStart...)
	return ctx
}

// AttemptStart starts an attempt span, a child of the operation span, and
// returns a context carrying it: the attempt runs with that context, so
// spans the database driver starts nest under the attempt.
func (o *Observer) AttemptStart(ctx context.Context, _ int) context.Context {
	if o.tracer == nil {
		return ctx
	}
	st := o.state(ctx, "")
	ctx, st.attempt = o.tracer.Start(ctx, attemptSpan, st.in.attemptStart...)
	if ctx.Value(hookedKey{}) != nil {
		// An observed attempt encloses this one (a step retried inside
		// an observed retry, or another Observer of the same retry): its
		// hook already adds the event, to the span the transaction runs
		// under. A second hook would add it again, to that same span.
		return ctx
	}
	return hookedCtx{scopes.OnCommitResolved(ctx, commitResolved)}
}

// hookedKey is answered by the context of an observed attempt, whose
// transactions report resolutions to commitResolved: one resolution is one
// event, however many observed attempts enclose the transaction.
type hookedKey struct{}

// hookedCtx is the context an attempt runs with once commitResolved is
// hooked to it.
type hookedCtx struct{ context.Context }

func (c hookedCtx) Value(key any) any {
	if key == (hookedKey{}) {
		return true
	}
	return c.Context.Value(key)
}

// commitResolved adds the CommitResolvedEvent to the span of the context
// the transaction ran with: the attempt's, or a driver's span under it.
func commitResolved(ctx context.Context, r scopes.ResolvedCommit) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{
		ResolutionKey.String(r.Resolution.String()),
		ResolutionDurationKey.Float64(r.Elapsed.Seconds()),
	}
	if r.Err != nil {
		attrs = append(attrs, semconv.ExceptionMessage(r.Err.Error()))
	}
	span.AddEvent(CommitResolvedEvent, trace.WithAttributes(attrs...))
}

// AttemptEnd ends the attempt span and counts the attempt, and the retry
// when one follows.
func (o *Observer) AttemptEnd(ctx context.Context, e dbop.AttemptEvent) {
	if o.tracer == nil {
		return
	}
	st := o.state(ctx, "")
	in := st.in
	outcome := outcomeSuccess
	switch {
	case e.Err == nil:
		o.attempts.Add(ctx, 1, in.attemptOutcome[0]...)
	case e.Retry:
		outcome = outcomeRetry
		o.attempts.Add(ctx, 1, in.attemptOutcome[1]...)
		o.retries.Add(ctx, 1, in.retryOpts(e.Verdict)...)
	default:
		outcome = outcomeError
		o.attempts.Add(ctx, 1, in.attemptOutcome[2]...)
	}

	span := st.attempt
	if span == nil {
		span = trace.SpanFromContext(ctx)
	}
	st.attempt = nil
	defer span.End()
	if !span.IsRecording() {
		return
	}
	if e.Err == nil {
		span.SetAttributes(lookup(&o.attemptSucceeded, AttemptKey, e.Attempt)...)
		return
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs,
		AttemptKey.Int(e.Attempt),
		OutcomeKey.String(outcome),
		VerdictKey.String(e.Verdict.String()),
		semconv.ErrorTypeKey.String(errorType(e.Err)))
	if e.Retry {
		attrs = append(attrs, RetryDelayKey.Float64(e.Delay.Seconds()))
	}
	span.SetAttributes(attrs...)
	span.RecordError(e.Err)
	span.SetStatus(codes.Error, e.Err.Error())
}

// OperationEnd ends the operation span, counts the operation and records its
// duration.
func (o *Observer) OperationEnd(ctx context.Context, e dbop.OperationEvent) {
	if o.tracer == nil {
		return
	}
	st := o.state(ctx, e.Name)
	in, span := st.in, st.op
	defer span.End()
	seconds := e.Duration.Seconds()
	if e.Err == nil {
		o.operations.Add(ctx, 1, in.opSuccessAdd...)
		o.duration.Record(ctx, seconds, in.opSuccessRecord...)
		if span.IsRecording() {
			span.SetAttributes(lookup(&o.opSucceeded, AttemptsKey, e.Attempts)...)
		}
		return
	}

	outcome := outcomeError
	if errors.Is(e.Err, dbop.ErrRetriesExhausted) {
		outcome = outcomeExhausted
	}
	errType := semconv.ErrorTypeKey.String(errorType(e.Err))
	attrs := make([]attribute.KeyValue, 0, len(in.attrs)+2)
	attrs = append(attrs, in.attrs...)
	attrs = append(attrs, OutcomeKey.String(outcome), errType)
	set := metric.WithAttributeSet(attribute.NewSet(attrs...))
	o.operations.Add(ctx, 1, set)
	o.duration.Record(ctx, seconds, set)

	if span.IsRecording() {
		span.SetAttributes(
			AttemptsKey.Int(e.Attempts),
			OutcomeKey.String(outcome),
			VerdictKey.String(dbop.VerdictOf(e.Err).String()),
			errType)
		span.RecordError(e.Err)
		span.SetStatus(codes.Error, e.Err.Error())
	}
}

// stateKey is the context key under which an Observer keeps the state of an
// operation. It holds the Observer, so that several Observers attached to one
// retry ([dbop.Observe] twice) keep apart; and each Observer ends its own
// spans, found here rather than with [trace.SpanFromContext], since the
// context its end events receive may carry another observer's spans.
type stateKey struct{ o *Observer }

// opState is what an operation's events share, from OperationStart to
// OperationEnd. The attempts of an operation run one after another on one
// goroutine, so it needs no lock.
type opState struct {
	in      *opInstr
	op      trace.Span
	attempt trace.Span // the attempt span between AttemptStart and AttemptEnd
}

// state returns the operation state OperationStart left in ctx. Were it
// missing (the events not called as [dbop.Observer] says), it makes do with
// the spans in ctx.
func (o *Observer) state(ctx context.Context, name string) *opState {
	if st, ok := ctx.Value(stateKey{o}).(*opState); ok {
		return st
	}
	span := trace.SpanFromContext(ctx)
	return &opState{in: o.opInstr(name), op: span}
}

// opInstr holds what an operation's events need, computed once per operation
// name: span names and start options, and the metric attribute sets, so that
// an observed operation that succeeds builds no attributes at all.
type opInstr struct {
	spanName     string
	attrs        []attribute.KeyValue // metric attributes: the base ones and the operation name
	opStart      []trace.SpanStartOption
	attemptStart []trace.SpanStartOption

	opSuccessAdd    []metric.AddOption
	opSuccessRecord []metric.RecordOption
	attemptOutcome  [3][]metric.AddOption // success, retry, error
	retryVerdict    [numVerdicts][]metric.AddOption
}

// numVerdicts is the number of verdicts dbop defines.
const numVerdicts = int(dbop.Ambiguous) + 1

// opInstr returns the opInstr for the operation name, creating and caching
// it on first use while fewer than maxNames names are cached. A name past
// the cap gets an opInstr of its own spans and the overflow name's metric
// attributes, built on each call.
func (o *Observer) opInstr(name string) *opInstr {
	if name == "" {
		return o.unnamed
	}
	if in, ok := o.names.Load(name); ok {
		return in.(*opInstr)
	}
	if !o.full.Load() {
		if in := o.addName(name); in != nil {
			return in
		}
	}
	o.overflow.Do(func() {
		otel.Handle(fmt.Errorf("dbop/adapters/otel: more than %d operation names; "+
			"metrics report the others as %s; names passed to dbop.Named should be constants",
			o.maxNames, OverflowOperationName))
	})
	return o.overflowInstr(name)
}

// addName caches and returns the opInstr of a name not cached when the
// cache was looked at, or returns nil if the cache is full.
func (o *Observer) addName(name string) *opInstr {
	o.mu.Lock()
	defer o.mu.Unlock()
	if in, ok := o.names.Load(name); ok { // added by another goroutine meanwhile
		return in.(*opInstr)
	}
	if o.numNames >= o.maxNames {
		return nil
	}
	in := o.newOpInstr(name, name)
	o.names.Store(name, in)
	o.numNames++
	o.full.Store(o.numNames >= o.maxNames)
	return in
}

// overflowInstr returns the opInstr of a name past the cap: the spans carry
// the name, the metrics [OverflowOperationName].
func (o *Observer) overflowInstr(name string) *opInstr {
	in := *o.other
	in.spanName = name
	in.opStart = spanStart(append(slices.Clip(o.base), OperationNameKey.String(name)))
	in.attemptStart = in.opStart
	return &in
}

// spanStart returns the start options of an operation or attempt span with
// attrs.
func spanStart(attrs []attribute.KeyValue) []trace.SpanStartOption {
	return []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...)}
}

// newOpInstr computes the opInstr of an operation whose spans are named
// name and whose metrics carry metricName as dbop.operation.name; "" is the
// unnamed operation.
func (o *Observer) newOpInstr(name, metricName string) *opInstr {
	in := &opInstr{spanName: defaultOperationSpan}
	spanAttrs := slices.Clip(o.base)
	if name != "" {
		in.spanName = name
		spanAttrs = append(spanAttrs, OperationNameKey.String(name))
	}
	in.opStart = spanStart(spanAttrs)
	in.attemptStart = in.opStart

	in.attrs = slices.Clip(o.base)
	if metricName != "" {
		in.attrs = append(in.attrs, OperationNameKey.String(metricName))
	}
	in.attrs = slices.Clip(in.attrs) // appends by users of attrs copy
	with := func(kv attribute.KeyValue) metric.MeasurementOption {
		attrs := append(in.attrs, kv)
		return metric.WithAttributeSet(attribute.NewSet(attrs...))
	}
	success := with(OutcomeKey.String(outcomeSuccess))
	in.opSuccessAdd = []metric.AddOption{success}
	in.opSuccessRecord = []metric.RecordOption{success}
	for i, outcome := range [...]string{outcomeSuccess, outcomeRetry, outcomeError} {
		in.attemptOutcome[i] = []metric.AddOption{with(OutcomeKey.String(outcome))}
	}
	for v := range numVerdicts {
		in.retryVerdict[v] = []metric.AddOption{with(VerdictKey.String(dbop.Verdict(v).String()))}
	}
	return in
}

// retryOpts returns the measurement options of a retry after an error with
// verdict v.
func (in *opInstr) retryOpts(v dbop.Verdict) []metric.AddOption {
	if int(v) < numVerdicts {
		return in.retryVerdict[v]
	}
	attrs := append(in.attrs, VerdictKey.String(v.String()))
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
}
