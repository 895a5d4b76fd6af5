package otel_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/dbop-go/dbop"
	dbopotel "github.com/dbop-go/dbop/adapters/otel"
)

// pgError stands in for *pgconn.PgError: an error with an SQLSTATE.
type pgError struct{ code, msg string }

func (e *pgError) Error() string    { return e.msg }
func (e *pgError) SQLState() string { return e.code }

// harness is an Observer wired to a real trace and metric SDK.
type harness struct {
	tp     *sdktrace.TracerProvider
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	obs    *dbopotel.Observer
}

func newHarness(t *testing.T, opts ...dbopotel.Option) *harness {
	t.Helper()
	h := &harness{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	t.Cleanup(func() {
		_ = h.tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	opts = append([]dbopotel.Option{dbopotel.WithTracerProvider(h.tp), dbopotel.WithMeterProvider(mp)}, opts...)
	h.obs = dbopotel.NewObserver(opts...)
	return h
}

// run runs, under a span named "caller", an Op that fails with errs in turn
// and then succeeds, retried with opts and observed by h. It returns the span
// context each attempt found in its ctx.
func (h *harness) run(errs []error, opts ...dbop.RetryOption) ([]trace.SpanContext, error) {
	ctx, caller := h.tp.Tracer("test").Start(context.Background(), "caller")
	defer caller.End()
	var seen []trace.SpanContext
	op := dbop.Op[int](func(ctx context.Context) (int, error) {
		seen = append(seen, trace.SpanFromContext(ctx).SpanContext())
		if n := len(seen); n <= len(errs) {
			return 0, errs[n-1]
		}
		return 1, nil
	})
	opts = append([]dbop.RetryOption{dbop.Observe(h.obs)}, opts...)
	_, err := op.With(dbop.WithRetry(dbop.Constant(0), opts...)).Run(ctx)
	return seen, err
}

// spanView is what the tests assert of a span.
type spanView struct {
	Name   string
	Parent string // label of the parent span (see labels), "" for a root
	Kind   trace.SpanKind
	Attrs  map[string]any
	Status codes.Code
	Desc   string
	Events []string // name: exception.message
}

// labels names each span by its name, followed by #k when k-th of several
// spans with that name, in the order the spans ended.
func labels(spans []sdktrace.ReadOnlySpan) map[trace.SpanID]string {
	count := map[string]int{}
	for _, s := range spans {
		count[s.Name()]++
	}
	seen := map[string]int{}
	out := map[trace.SpanID]string{}
	for _, s := range spans {
		label := s.Name()
		if count[label] > 1 {
			seen[label]++
			label += "#" + strconv.Itoa(seen[label])
		}
		out[s.SpanContext().SpanID()] = label
	}
	return out
}

// viewSpans summarises the ended spans, in the order they ended, checking
// that they form one trace.
func viewSpans(t *testing.T, spans []sdktrace.ReadOnlySpan) []spanView {
	t.Helper()
	label := labels(spans)
	var views []spanView
	for _, s := range spans {
		if s.SpanContext().TraceID() != spans[0].SpanContext().TraceID() {
			t.Errorf("span %q is in trace %v, want %v", s.Name(), s.SpanContext().TraceID(), spans[0].SpanContext().TraceID())
		}
		v := spanView{Name: s.Name(), Kind: s.SpanKind(), Attrs: map[string]any{}, Status: s.Status().Code, Desc: s.Status().Description}
		if s.Parent().IsValid() {
			var ok bool
			if v.Parent, ok = label[s.Parent().SpanID()]; !ok {
				t.Errorf("span %q has a parent that was not recorded", s.Name())
			}
		}
		for _, kv := range s.Attributes() {
			v.Attrs[string(kv.Key)] = kv.Value.AsInterface()
		}
		for _, e := range s.Events() {
			msg := ""
			for _, kv := range e.Attributes {
				if kv.Key == "exception.message" {
					msg = kv.Value.AsString()
				}
			}
			v.Events = append(v.Events, e.Name+": "+msg)
		}
		views = append(views, v)
	}
	return views
}

// collect returns every data point recorded, keyed by instrument name and
// attributes: the value of a counter, the count of a histogram.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	points := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					points[m.Name+attrString(p.Attributes)] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					points[m.Name+attrString(p.Attributes)] += int64(p.Count)
				}
			default:
				t.Errorf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return points
}

func attrString(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestObserver(t *testing.T) {
	deadlock := dbop.Classify(&pgError{code: "40P01", msg: "deadlock detected"}, dbop.RetryTransaction)
	serialization := dbop.Classify(&pgError{code: "40001", msg: "could not serialize access"}, dbop.RetryTransaction)
	unique := dbop.Classify(&pgError{code: "23505", msg: "duplicate key"}, dbop.NotRetryable)
	tests := []struct {
		name        string
		opts        []dbopotel.Option
		errs        []error
		retryOpts   []dbop.RetryOption
		wantErr     string
		wantSpans   []spanView
		wantMetrics map[string]int64
	}{{
		name:      "fails twice then succeeds",
		errs:      []error{deadlock, deadlock},
		retryOpts: []dbop.RetryOption{dbop.Named("transfer")},
		wantSpans: []spanView{{
			Name: "dbop.attempt", Parent: "transfer", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{
				"dbop.operation.name": "transfer", "dbop.attempt": int64(1), "dbop.outcome": "retry",
				"dbop.verdict": "retry-transaction", "dbop.retry.delay": 0.0, "error.type": "40P01",
			},
			Status: codes.Error, Desc: "deadlock detected", Events: []string{"exception: deadlock detected"},
		}, {
			Name: "dbop.attempt", Parent: "transfer", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{
				"dbop.operation.name": "transfer", "dbop.attempt": int64(2), "dbop.outcome": "retry",
				"dbop.verdict": "retry-transaction", "dbop.retry.delay": 0.0, "error.type": "40P01",
			},
			Status: codes.Error, Desc: "deadlock detected", Events: []string{"exception: deadlock detected"},
		}, {
			Name: "dbop.attempt", Parent: "transfer", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{"dbop.operation.name": "transfer", "dbop.attempt": int64(3), "dbop.outcome": "success"},
		}, {
			Name: "transfer", Parent: "caller", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{"dbop.operation.name": "transfer", "dbop.attempts": int64(3), "dbop.outcome": "success"},
		}, {
			Name: "caller", Kind: trace.SpanKindInternal, Attrs: map[string]any{},
		}},
		wantMetrics: map[string]int64{
			"dbop.operations{dbop.operation.name=transfer,dbop.outcome=success}":         1,
			"dbop.operation.duration{dbop.operation.name=transfer,dbop.outcome=success}": 1,
			"dbop.attempts{dbop.operation.name=transfer,dbop.outcome=retry}":             2,
			"dbop.attempts{dbop.operation.name=transfer,dbop.outcome=success}":           1,
			"dbop.retries{dbop.operation.name=transfer,dbop.verdict=retry-transaction}":  2,
		},
	}, {
		name:      "exhausts its attempts",
		errs:      []error{serialization, serialization, serialization},
		retryOpts: []dbop.RetryOption{dbop.Named("transfer"), dbop.MaxAttempts(3)},
		wantErr:   "dbop: retries exhausted after 3 attempts: could not serialize access",
		wantSpans: []spanView{{
			Name: "dbop.attempt", Parent: "transfer", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{
				"dbop.operation.name": "transfer", "dbop.attempt": int64(1), "dbop.outcome": "retry",
				"dbop.verdict": "retry-transaction", "dbop.retry.delay": 0.0, "error.type": "40001",
			},
			Status: codes.Error, Desc: "could not serialize access", Events: []string{"exception: could not serialize access"},
		}, {
			Name: "dbop.attempt", Parent: "transfer", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{
				"dbop.operation.name": "transfer", "dbop.attempt": int64(2), "dbop.outcome": "retry",
				"dbop.verdict": "retry-transaction", "dbop.retry.delay": 0.0, "error.type": "40001",
			},
			Status: codes.Error, Desc: "could not serialize access", Events: []string{"exception: could not serialize access"},
		}, {
			Name: "dbop.attempt", Parent: "transfer", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{
				"dbop.operation.name": "transfer", "dbop.attempt": int64(3), "dbop.outcome": "error",
				"dbop.verdict": "retry-transaction", "error.type": "40001",
			},
			Status: codes.Error, Desc: "could not serialize access", Events: []string{"exception: could not serialize access"},
		}, {
			Name: "transfer", Parent: "caller", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{
				"dbop.operation.name": "transfer", "dbop.attempts": int64(3), "dbop.outcome": "exhausted",
				"dbop.verdict": "retry-transaction", "error.type": "40001",
			},
			Status: codes.Error, Desc: "dbop: retries exhausted after 3 attempts: could not serialize access",
			Events: []string{"exception: dbop: retries exhausted after 3 attempts: could not serialize access"},
		}, {
			Name: "caller", Kind: trace.SpanKindInternal, Attrs: map[string]any{},
		}},
		wantMetrics: map[string]int64{
			"dbop.operations{dbop.operation.name=transfer,dbop.outcome=exhausted,error.type=40001}":         1,
			"dbop.operation.duration{dbop.operation.name=transfer,dbop.outcome=exhausted,error.type=40001}": 1,
			"dbop.attempts{dbop.operation.name=transfer,dbop.outcome=retry}":                                2,
			"dbop.attempts{dbop.operation.name=transfer,dbop.outcome=error}":                                1,
			"dbop.retries{dbop.operation.name=transfer,dbop.verdict=retry-transaction}":                     2,
		},
	}, {
		name:      "permanent error",
		errs:      []error{unique},
		retryOpts: []dbop.RetryOption{dbop.Named("insert")},
		wantErr:   "duplicate key",
		wantSpans: []spanView{{
			Name: "dbop.attempt", Parent: "insert", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{
				"dbop.operation.name": "insert", "dbop.attempt": int64(1), "dbop.outcome": "error",
				"dbop.verdict": "not-retryable", "error.type": "23505",
			},
			Status: codes.Error, Desc: "duplicate key", Events: []string{"exception: duplicate key"},
		}, {
			Name: "insert", Parent: "caller", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{
				"dbop.operation.name": "insert", "dbop.attempts": int64(1), "dbop.outcome": "error",
				"dbop.verdict": "not-retryable", "error.type": "23505",
			},
			Status: codes.Error, Desc: "duplicate key", Events: []string{"exception: duplicate key"},
		}, {
			Name: "caller", Kind: trace.SpanKindInternal, Attrs: map[string]any{},
		}},
		wantMetrics: map[string]int64{
			"dbop.operations{dbop.operation.name=insert,dbop.outcome=error,error.type=23505}":         1,
			"dbop.operation.duration{dbop.operation.name=insert,dbop.outcome=error,error.type=23505}": 1,
			"dbop.attempts{dbop.operation.name=insert,dbop.outcome=error}":                            1,
		},
	}, {
		name: "unnamed, with db system and attributes",
		opts: []dbopotel.Option{
			dbopotel.WithDBSystem("postgresql"),
			dbopotel.WithAttributes(attribute.String("pool", "primary")),
			dbopotel.WithDBSystem(""), // sets nothing
			nil,                       // ignored
		},
		// Marked retryable: an unclassified error is final (invariant 3),
		// and this case is about the spans of a retried attempt.
		errs: []error{dbop.Classify(errors.New("connection reset"), dbop.RetryTransaction)},
		wantSpans: []spanView{{
			Name: "dbop.attempt", Parent: "dbop.operation", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{
				"db.system.name": "postgresql", "pool": "primary", "dbop.attempt": int64(1), "dbop.outcome": "retry",
				"dbop.verdict": "retry-transaction", "dbop.retry.delay": 0.0, "error.type": "*errors.errorString",
			},
			Status: codes.Error, Desc: "connection reset", Events: []string{"exception: connection reset"},
		}, {
			Name: "dbop.attempt", Parent: "dbop.operation", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{"db.system.name": "postgresql", "pool": "primary", "dbop.attempt": int64(2), "dbop.outcome": "success"},
		}, {
			Name: "dbop.operation", Parent: "caller", Kind: trace.SpanKindInternal,
			Attrs: map[string]any{"db.system.name": "postgresql", "pool": "primary", "dbop.attempts": int64(2), "dbop.outcome": "success"},
		}, {
			Name: "caller", Kind: trace.SpanKindInternal, Attrs: map[string]any{},
		}},
		wantMetrics: map[string]int64{
			"dbop.operations{db.system.name=postgresql,dbop.outcome=success,pool=primary}":         1,
			"dbop.operation.duration{db.system.name=postgresql,dbop.outcome=success,pool=primary}": 1,
			"dbop.attempts{db.system.name=postgresql,dbop.outcome=retry,pool=primary}":             1,
			"dbop.attempts{db.system.name=postgresql,dbop.outcome=success,pool=primary}":           1,
			"dbop.retries{db.system.name=postgresql,dbop.verdict=retry-transaction,pool=primary}":  1,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts...)
			seen, err := h.run(tt.errs, tt.retryOpts...)
			if got := errString(err); got != tt.wantErr {
				t.Errorf("error = %q, want %q", got, tt.wantErr)
			}
			ended := h.spans.Ended()
			if diff := cmp.Diff(tt.wantSpans, viewSpans(t, ended)); diff != "" {
				t.Errorf("spans (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMetrics, collect(t, h.reader)); diff != "" {
				t.Errorf("metrics (-want +got):\n%s", diff)
			}

			// Each attempt ran with a context carrying its own span, so
			// driver spans nest under it.
			var want []trace.SpanContext
			for _, s := range ended {
				if s.Name() == "dbop.attempt" {
					want = append(want, s.SpanContext())
				}
			}
			if diff := cmp.Diff(want, seen); diff != "" {
				t.Errorf("span contexts the attempts ran with (-want +got):\n%s", diff)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestInstruments checks the instruments' names, units and kinds, and the
// histogram's bucket boundaries.
func TestInstruments(t *testing.T) {
	h := newHarness(t)
	// Retryable, so that every instrument records (an unclassified error
	// would not be retried: invariant 3).
	if _, err := h.run([]error{dbop.Classify(errors.New("boom"), dbop.RetryTransaction)}, dbop.Named("op")); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	type instrument struct{ Scope, Name, Unit, Kind string }
	var got []instrument
	var bounds []float64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got = append(got, instrument{sm.Scope.Name, m.Name, m.Unit, fmt.Sprintf("%T", m.Data)})
			if hist, ok := m.Data.(metricdata.Histogram[float64]); ok {
				bounds = hist.DataPoints[0].Bounds
				if m.Description == "" {
					t.Errorf("%s has no description", m.Name)
				}
			}
		}
	}
	const scope = dbopotel.ScopeName
	want := []instrument{
		{scope, "dbop.operations", "{operation}", "metricdata.Sum[int64]"},
		{scope, "dbop.attempts", "{attempt}", "metricdata.Sum[int64]"},
		{scope, "dbop.retries", "{retry}", "metricdata.Sum[int64]"},
		{scope, "dbop.operation.duration", "s", "metricdata.Histogram[float64]"},
	}
	less := func(a, b instrument) bool { return a.Name < b.Name }
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(less)); diff != "" {
		t.Errorf("instruments (-want +got):\n%s", diff)
	}
	wantBounds := []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	if diff := cmp.Diff(wantBounds, bounds); diff != "" {
		t.Errorf("histogram bounds (-want +got):\n%s", diff)
	}
	for _, s := range h.spans.Ended() {
		if s.Name() == "caller" {
			continue
		}
		if got := s.InstrumentationScope().Name; got != scope {
			t.Errorf("span %q has scope %q, want %q", s.Name(), got, scope)
		}
		if got := s.InstrumentationScope().SchemaURL; !strings.HasPrefix(got, "https://opentelemetry.io/schemas/") {
			t.Errorf("span %q has schema URL %q", s.Name(), got)
		}
	}
}

// TestNestedRetries runs a retried Op inside an attempt of another: the inner
// operation's span is a child of the outer attempt's span.
func TestNestedRetries(t *testing.T) {
	h := newHarness(t)
	inner := dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).
		With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(h.obs), dbop.Named("inner")))
	calls := 0
	outer := dbop.Op[int](func(ctx context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, dbop.Classify(errors.New("connection lost"), dbop.RetryTransaction)
		}
		return inner.Run(ctx)
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(h.obs), dbop.Named("outer")))
	if _, err := outer.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	type edge struct{ Span, Parent string }
	var got []edge
	for _, v := range viewSpans(t, h.spans.Ended()) {
		got = append(got, edge{v.Name + " " + fmt.Sprint(v.Attrs["dbop.operation.name"]), v.Parent})
	}
	want := []edge{
		{"dbop.attempt outer", "outer"},   // dbop.attempt#1: failed
		{"dbop.attempt inner", "inner"},   // dbop.attempt#2
		{"inner inner", "dbop.attempt#3"}, // under the outer's second attempt
		{"dbop.attempt outer", "outer"},   // dbop.attempt#3
		{"outer outer", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("span tree (-want +got):\n%s", diff)
	}
	points := collect(t, h.reader)
	for _, key := range []string{
		"dbop.operations{dbop.operation.name=inner,dbop.outcome=success}",
		"dbop.operations{dbop.operation.name=outer,dbop.outcome=success}",
		"dbop.attempts{dbop.operation.name=inner,dbop.outcome=success}",
	} {
		if points[key] != 1 {
			t.Errorf("%s = %d, want 1", key, points[key])
		}
	}
}

// TestZeroObserver checks that the zero Observer records nothing and does
// not get in the way.
func TestZeroObserver(t *testing.T) {
	var obs dbopotel.Observer
	calls := 0
	op := dbop.Op[int](func(ctx context.Context) (int, error) {
		calls++
		if trace.SpanFromContext(ctx).SpanContext().IsValid() {
			t.Error("the zero Observer started a span")
		}
		if calls == 1 {
			return 0, dbop.Classify(errors.New("once"), dbop.RetryTransaction) // retryable: invariant 3
		}
		return 1, nil
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(&obs)))
	if _, err := op.Run(context.Background()); err != nil || calls != 2 {
		t.Errorf("Run: err = %v after %d calls, want nil after 2", err, calls)
	}
}

// TestNoopProviders checks that non-recording spans and no-op instruments
// are handled.
func TestNoopProviders(t *testing.T) {
	obs := dbopotel.NewObserver(
		dbopotel.WithTracerProvider(tracenoop.NewTracerProvider()),
		dbopotel.WithMeterProvider(metricnoop.NewMeterProvider()))
	op := dbop.Op[int](func(context.Context) (int, error) { return 0, dbop.Classify(errors.New("down"), dbop.RetryTransaction) }).
		With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), dbop.Observe(obs)))
	if _, err := op.Run(context.Background()); !errors.Is(err, dbop.ErrRetriesExhausted) {
		t.Errorf("Run: err = %v, want one matching ErrRetriesExhausted", err)
	}
}

// errorLog captures what is reported to otel.Handle for the rest of a test.
// Tests using it must not run in parallel.
type errorLog struct {
	mu   sync.Mutex
	errs []string
}

func (l *errorLog) Handle(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err.Error())
}

func (l *errorLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

func captureErrors(t *testing.T) *errorLog {
	l := &errorLog{}
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(l)
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	return l
}

// failingMeter fails to create every synchronous instrument.
type failingMeter struct{ metricnoop.Meter }

var errNoInstrument = errors.New("no instrument")

func (failingMeter) Int64Counter(string, ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return nil, errNoInstrument
}

func (failingMeter) Float64Histogram(string, ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	return nil, errNoInstrument
}

type failingMeterProvider struct{ metricnoop.MeterProvider }

func (failingMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter { return failingMeter{} }

func TestInstrumentErrors(t *testing.T) {
	log := captureErrors(t)
	spans := tracetest.NewSpanRecorder()
	obs := dbopotel.NewObserver(
		dbopotel.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))),
		dbopotel.WithMeterProvider(failingMeterProvider{}))
	want := []string{
		"dbop/adapters/otel: creating instrument dbop.operations: no instrument",
		"dbop/adapters/otel: creating instrument dbop.attempts: no instrument",
		"dbop/adapters/otel: creating instrument dbop.retries: no instrument",
		"dbop/adapters/otel: creating instrument dbop.operation.duration: no instrument",
	}
	if diff := cmp.Diff(want, log.get()); diff != "" {
		t.Errorf("reported errors (-want +got):\n%s", diff)
	}
	op := dbop.Op[int](func(context.Context) (int, error) { return 0, dbop.Classify(errors.New("down"), dbop.RetryTransaction) }).
		With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(2), dbop.Observe(obs)))
	if _, err := op.Run(context.Background()); err == nil {
		t.Error("Run succeeded")
	}
	if got := len(spans.Ended()); got != 3 {
		t.Errorf("%d spans ended, want 3: spans still work without instruments", got)
	}
}

// runNamed runs, observed by h, an Op named name that fails with errs in
// turn and then succeeds.
func (h *harness) runNamed(t *testing.T, name string, errs ...error) {
	t.Helper()
	if _, err := h.run(errs, dbop.Named(name)); err != nil {
		t.Fatal(err)
	}
}

// pointsOf returns the data points of the named instrument, keyed by their
// attributes.
func pointsOf(points map[string]int64, instrument string) map[string]int64 {
	out := map[string]int64{}
	for k, v := range points {
		if rest, ok := strings.CutPrefix(k, instrument+"{"); ok {
			out["{"+rest] = v
		}
	}
	return out
}

// TestNameCap checks that names past the cap are counted under the
// overflow name, on the success and the failure paths, while their spans
// keep their own names, and that the first such name is reported once.
func TestNameCap(t *testing.T) {
	log := captureErrors(t)
	h := newHarness(t, dbopotel.WithMaxOperationNames(2))
	busy := dbop.Classify(&pgError{code: "40001", msg: "could not serialize access"}, dbop.RetryTransaction)
	h.runNamed(t, "a")
	h.runNamed(t, "b", busy)
	h.runNamed(t, "c")
	h.runNamed(t, "d", busy)
	h.runNamed(t, "a")
	unique := dbop.Classify(&pgError{code: "23505", msg: "duplicate key"}, dbop.NotRetryable)
	op := dbop.Op[int](func(context.Context) (int, error) { return 0, unique }).
		With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(h.obs), dbop.Named("e")))
	if _, err := op.Run(context.Background()); err == nil {
		t.Fatal("e succeeded")
	}
	op = dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).
		With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(h.obs)))
	if _, err := op.Run(context.Background()); err != nil {
		t.Fatal(err)
	}

	points := collect(t, h.reader)
	wantOps := map[string]int64{
		"{dbop.operation.name=a,dbop.outcome=success}":                         2,
		"{dbop.operation.name=b,dbop.outcome=success}":                         1,
		"{dbop.operation.name=dbop.other,dbop.outcome=success}":                2, // c, d
		"{dbop.operation.name=dbop.other,dbop.outcome=error,error.type=23505}": 1, // e
		"{dbop.outcome=success}":                                               1, // unnamed
	}
	if diff := cmp.Diff(wantOps, pointsOf(points, "dbop.operations")); diff != "" {
		t.Errorf("dbop.operations (-want +got):\n%s", diff)
	}
	wantRetries := map[string]int64{
		"{dbop.operation.name=b,dbop.verdict=retry-transaction}":          1,
		"{dbop.operation.name=dbop.other,dbop.verdict=retry-transaction}": 1, // d
	}
	if diff := cmp.Diff(wantRetries, pointsOf(points, "dbop.retries")); diff != "" {
		t.Errorf("dbop.retries (-want +got):\n%s", diff)
	}
	wantAttempts := map[string]int64{
		"{dbop.operation.name=a,dbop.outcome=success}":          2,
		"{dbop.operation.name=b,dbop.outcome=retry}":            1,
		"{dbop.operation.name=b,dbop.outcome=success}":          1,
		"{dbop.operation.name=dbop.other,dbop.outcome=error}":   1, // e
		"{dbop.operation.name=dbop.other,dbop.outcome=retry}":   1, // d
		"{dbop.operation.name=dbop.other,dbop.outcome=success}": 2, // c, d
		"{dbop.outcome=success}":                                1,
	}
	if diff := cmp.Diff(wantAttempts, pointsOf(points, "dbop.attempts")); diff != "" {
		t.Errorf("dbop.attempts (-want +got):\n%s", diff)
	}

	// Spans keep the names; the attempt spans carry them too.
	named := map[string][]string{}
	for _, s := range h.spans.Ended() {
		if s.Name() == "caller" {
			continue
		}
		name := "<none>"
		for _, kv := range s.Attributes() {
			if kv.Key == dbopotel.OperationNameKey {
				name = kv.Value.AsString()
			}
		}
		named[s.Name()] = append(named[s.Name()], name)
	}
	wantSpans := map[string][]string{
		"a":              {"a", "a"},
		"b":              {"b"},
		"c":              {"c"},
		"d":              {"d"},
		"e":              {"e"},
		"dbop.operation": {"<none>"},
		"dbop.attempt":   {"a", "b", "b", "c", "d", "d", "a", "e", "<none>"},
	}
	if diff := cmp.Diff(wantSpans, named); diff != "" {
		t.Errorf("span names and their dbop.operation.name (-want +got):\n%s", diff)
	}

	want := []string{"dbop/adapters/otel: more than 2 operation names; metrics report the others as dbop.other; " +
		"names passed to dbop.Named should be constants"}
	if diff := cmp.Diff(want, log.get()); diff != "" {
		t.Errorf("reported errors (-want +got):\n%s", diff)
	}
}

// TestDefaultNameCap checks the default cap: 100 names.
func TestDefaultNameCap(t *testing.T) {
	captureErrors(t)
	h := newHarness(t)
	for i := range 102 {
		h.runNamed(t, fmt.Sprintf("op%d", i))
	}
	points := pointsOf(collect(t, h.reader), "dbop.operations")
	for name, want := range map[string]int64{"op0": 1, "op99": 1, "op100": 0, "op101": 0, "dbop.other": 2} {
		if got := points["{dbop.operation.name="+name+",dbop.outcome=success}"]; got != want {
			t.Errorf("operations counted under %s = %d, want %d", name, got, want)
		}
	}
}

// TestNameCapConcurrent races distinct names for the last places under the
// cap: exactly cap names get series of their own, and every operation is
// counted once.
func TestNameCapConcurrent(t *testing.T) {
	captureErrors(t)
	const limit, goroutines = 8, 64
	h := newHarness(t, dbopotel.WithMaxOperationNames(limit))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			<-start
			op := dbop.Op[int](func(context.Context) (int, error) { return 1, nil }).
				With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(h.obs), dbop.Named(fmt.Sprintf("op%d", g))))
			if _, err := op.Run(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	points := pointsOf(collect(t, h.reader), "dbop.operations")
	own, total := 0, int64(0)
	for k, v := range points {
		total += v
		if !strings.Contains(k, "name=dbop.other,") {
			own++
		}
	}
	if own != limit || total != goroutines {
		t.Errorf("%d names with series of their own, %d operations counted; want %d and %d: %v", own, total, limit, goroutines, points)
	}
	if got := points["{dbop.operation.name=dbop.other,dbop.outcome=success}"]; got != goroutines-limit {
		t.Errorf("dbop.other counted %d operations, want %d", got, goroutines-limit)
	}
}

func TestWithMaxOperationNamesPanics(t *testing.T) {
	for _, n := range []int{0, -1} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("WithMaxOperationNames(%d) did not panic", n)
				}
			}()
			dbopotel.WithMaxOperationNames(n)
		})
	}
}

// TestConcurrentUse runs many observed operations at once, for the race
// detector.
func TestConcurrentUse(t *testing.T) {
	h := newHarness(t)
	const goroutines, names = 16, 4
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			calls := 0
			op := dbop.Op[int](func(context.Context) (int, error) {
				calls++
				if calls == 1 {
					return 0, dbop.Classify(errors.New("busy"), dbop.RetryTransaction)
				}
				return 1, nil
			}).With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(h.obs), dbop.Named(fmt.Sprintf("op%d", g%names))))
			if _, err := op.Run(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	points := collect(t, h.reader)
	total := int64(0)
	for i := range names {
		total += points[fmt.Sprintf("dbop.operations{dbop.operation.name=op%d,dbop.outcome=success}", i)]
	}
	if total != goroutines {
		t.Errorf("%d operations counted, want %d", total, goroutines)
	}
	if got := len(h.spans.Ended()); got != 3*goroutines {
		t.Errorf("%d spans, want %d", got, 3*goroutines)
	}
}

// TestTwoObservers attaches two Observers to one retry: each ends its own
// spans, though the context its end events receive carries the other's.
func TestTwoObservers(t *testing.T) {
	h := newHarness(t)
	a := dbopotel.NewObserver(dbopotel.WithTracerProvider(h.tp), dbopotel.WithAttributes(attribute.String("observer", "a")))
	b := dbopotel.NewObserver(dbopotel.WithTracerProvider(h.tp), dbopotel.WithAttributes(attribute.String("observer", "b")))
	calls := 0
	op := dbop.Op[int](func(context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, dbop.Classify(errors.New("busy"), dbop.RetryTransaction)
		}
		return 1, nil
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(a), dbop.Observe(b), dbop.Named("transfer")))
	if _, err := op.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	type span struct{ Name, Observer, Outcome, Parent string }
	var got []span
	for _, v := range viewSpans(t, h.spans.Ended()) {
		got = append(got, span{v.Name, fmt.Sprint(v.Attrs["observer"]), fmt.Sprint(v.Attrs["dbop.outcome"]), v.Parent})
	}
	// b's spans are children of a's: b's events run inside a's (first
	// listed is outermost), and b's end events run first.
	want := []span{
		{"dbop.attempt", "b", "retry", "dbop.attempt#2"},
		{"dbop.attempt", "a", "retry", "transfer#1"},
		{"dbop.attempt", "b", "success", "dbop.attempt#4"},
		{"dbop.attempt", "a", "success", "transfer#1"},
		{"transfer", "b", "success", "transfer#2"},
		{"transfer", "a", "success", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}
