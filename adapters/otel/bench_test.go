package otel_test

import (
	"context"
	"errors"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/dbop-go/dbop"
	dbopotel "github.com/dbop-go/dbop/adapters/otel"
)

// discard is a span processor that drops every span, so a benchmark measures
// recording spans, not exporting them.
type discard struct{}

func (discard) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discard) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discard) Shutdown(context.Context) error                  { return nil }
func (discard) ForceFlush(context.Context) error                { return nil }

// BenchmarkObserver measures one operation run through WithRetry: with no
// observer, with an Observer on no-op providers (the adapter's own cost), and
// on the SDK, sampling every span and aggregating every measurement.
//
//	go test -run '^$' -bench BenchmarkObserver -benchmem ./adapters/otel/
func BenchmarkObserver(b *testing.B) {
	sdk := func(b *testing.B) []dbopotel.Option {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(discard{}))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		b.Cleanup(func() {
			_ = tp.Shutdown(context.Background())
			_ = mp.Shutdown(context.Background())
		})
		return []dbopotel.Option{dbopotel.WithTracerProvider(tp), dbopotel.WithMeterProvider(mp), dbopotel.WithDBSystem("postgresql")}
	}
	noop := func(*testing.B) []dbopotel.Option {
		return []dbopotel.Option{
			dbopotel.WithTracerProvider(tracenoop.NewTracerProvider()),
			dbopotel.WithMeterProvider(metricnoop.NewMeterProvider()),
		}
	}
	benchmarks := []struct {
		name     string
		observer func(*testing.B) []dbopotel.Option // nil: no observer
		failures int                                // failed attempts before success
	}{
		{"none", nil, 0},
		{"noop", noop, 0},
		{"sdk", sdk, 0},
		{"none/1-retry", nil, 1},
		{"noop/1-retry", noop, 1},
		{"sdk/1-retry", sdk, 1},
	}
	failure := dbop.Classify(errors.New("deadlock detected"), dbop.RetryTransaction)
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			opts := []dbop.RetryOption{dbop.Named("transfer")}
			if bm.observer != nil {
				opts = append(opts, dbop.Observe(dbopotel.NewObserver(bm.observer(b)...)))
			}
			calls := 0
			op := dbop.Op[int](func(context.Context) (int, error) {
				calls++
				if calls%(bm.failures+1) != 0 {
					return 0, failure
				}
				return 1, nil
			}).With(dbop.WithRetry(dbop.Constant(0), opts...))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := op.Run(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
