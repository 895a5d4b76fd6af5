package otel

import (
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// An Option configures [NewObserver].
type Option func(*config)

type config struct {
	tp       trace.TracerProvider
	mp       metric.MeterProvider
	attrs    []attribute.KeyValue
	maxNames int
}

// WithTracerProvider makes the Observer create its spans with tp instead of
// the global provider ([go.opentelemetry.io/otel.GetTracerProvider]). A nil
// tp keeps the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp != nil {
			c.tp = tp
		}
	}
}

// WithMeterProvider makes the Observer create its instruments with mp
// instead of the global provider
// ([go.opentelemetry.io/otel.GetMeterProvider]). A nil mp keeps the global
// provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if mp != nil {
			c.mp = mp
		}
	}
}

// WithDBSystem names the database management system, such as "postgresql",
// "mysql", "mariadb", "sqlite" or "cockroachdb", in the semantic-convention
// attribute db.system.name ([semconv.DBSystemNameKey]) on every span and
// data point. The well-known values are the DBSystemName* variables of
// go.opentelemetry.io/otel/semconv. An empty name sets nothing.
func WithDBSystem(name string) Option {
	return func(c *config) {
		if name != "" {
			c.attrs = append(c.attrs, semconv.DBSystemNameKey.String(name))
		}
	}
}

// WithAttributes adds attrs to every span and every metric data point the
// Observer records. Metric attributes multiply time series, so keep them few
// and of low cardinality (a service or pool name, not a user ID).
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return func(c *config) { c.attrs = append(c.attrs, attrs...) }
}

// WithMaxOperationNames caps at n the distinct operation names ([dbop.Named])
// that the Observer's metrics report, 100 by default. Each name is a time
// series of every instrument; past the cap, metrics report an operation
// under [OverflowOperationName] instead, while its spans keep its name. The
// first name past the cap is reported to [go.opentelemetry.io/otel.Handle].
// It panics if n < 1.
func WithMaxOperationNames(n int) Option {
	if n < 1 {
		panic(fmt.Sprintf("dbop/adapters/otel: WithMaxOperationNames(%d): the cap must be at least 1", n))
	}
	return func(c *config) { c.maxNames = n }
}
