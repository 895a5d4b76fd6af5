package otel_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dbop-go/dbop"
	dbopotel "github.com/dbop-go/dbop/adapters/otel"
)

// An operation that hits two deadlocks before it succeeds: one span for the
// operation, one child span per attempt, and the counters.
func Example() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	obs := dbopotel.NewObserver(
		dbopotel.WithTracerProvider(tp),
		dbopotel.WithMeterProvider(mp),
		dbopotel.WithDBSystem("postgresql"))

	calls := 0
	transfer := dbop.Op[string](func(ctx context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", dbop.Classify(errors.New("deadlock detected"), dbop.RetryTransaction)
		}
		return "done", nil
	}).With(dbop.WithRetry(dbop.Constant(0), dbop.Observe(obs), dbop.Named("transfer")))
	if _, err := transfer.Run(context.Background()); err != nil {
		log.Fatal(err)
	}

	// Print the operation span, then its attempts.
	ended := spans.Ended()
	slices.SortStableFunc(ended, func(a, b sdktrace.ReadOnlySpan) int {
		return boolInt(a.Parent().IsValid()) - boolInt(b.Parent().IsValid())
	})
	for _, s := range ended {
		indent := ""
		if s.Parent().IsValid() {
			indent = "  "
		}
		var attrs []string
		for _, kv := range s.Attributes() {
			if kv.Key != "db.system.name" && kv.Key != "dbop.operation.name" {
				attrs = append(attrs, fmt.Sprintf("%s=%s", kv.Key, kv.Value.String()))
			}
		}
		slices.Sort(attrs)
		fmt.Printf("%s%s [%s] %s\n", indent, s.Name(), s.Status().Code, strings.Join(attrs, " "))
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	var lines []string
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
			for _, p := range sum.DataPoints {
				outcome, _ := p.Attributes.Value("dbop.outcome")
				verdict, _ := p.Attributes.Value("dbop.verdict")
				lines = append(lines, fmt.Sprintf("%s %s%s = %d", m.Name, outcome.String(), verdict.String(), p.Value))
			}
		}
	}
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// transfer [Unset] dbop.attempts=3 dbop.outcome=success
	//   dbop.attempt [Error] dbop.attempt=1 dbop.outcome=retry dbop.retry.delay=0 dbop.verdict=retry-transaction error.type=*errors.errorString
	//   dbop.attempt [Error] dbop.attempt=2 dbop.outcome=retry dbop.retry.delay=0 dbop.verdict=retry-transaction error.type=*errors.errorString
	//   dbop.attempt [Unset] dbop.attempt=3 dbop.outcome=success
	// dbop.attempts retry = 2
	// dbop.attempts success = 1
	// dbop.operations success = 1
	// dbop.retries retry-transaction = 2
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Wiring the observer to the SDK with spans printed by the stdout exporter.
// Installed as the global provider, the SDK is what NewObserver picks up
// when given no provider.
func Example_stdout() {
	exporter, err := stdouttrace.New(stdouttrace.WithPrettyPrint())
	if err != nil {
		log.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	otel.SetTracerProvider(tp)

	obs := dbopotel.NewObserver(dbopotel.WithDBSystem("sqlite"))
	resilient := dbop.Chain(dbop.WithRetry(dbop.Constant(0), dbop.Observe(obs), dbop.Named("count-users")))

	count := dbop.Op[int](func(ctx context.Context) (int, error) {
		// A driver instrumented with OpenTelemetry, given ctx, starts its
		// spans as children of this attempt's span.
		return 42, nil
	}).With(resilient)
	n, err := count.Run(context.Background())
	fmt.Println(n, err)
}
