// Package otel reports operations run by [dbop.WithRetry] to OpenTelemetry:
// a span per operation with a child span per attempt, and metrics counting
// operations, attempts and retries and timing operations.
//
// Its name clashes with go.opentelemetry.io/otel, so import it under another
// name:
//
//	import dbopotel "github.com/dbop-go/dbop/adapters/otel"
//
//	obs := dbopotel.NewObserver(dbopotel.WithDBSystem("postgresql"))
//	transfer := dbop.Chain(dbop.WithRetry(backoff, dbop.Observe(obs), dbop.Named("transfer")))
//
// Build one [Observer] per process (or per provider) and share it: it is safe
// for concurrent use, and it computes the attributes of each operation name
// once, so an observed operation that succeeds builds no attribute sets.
// A retry with no observer attached does not call into this package at all
// and spends nothing on telemetry. Several Observers may be attached to one
// retry (one per provider, say): each ends its own spans.
//
// # Spans
//
// Each operation gets a span of kind Internal named after the operation
// ([dbop.Named]), or "dbop.operation" when it has none. It is a child of the
// span in the context the operation runs with. Each attempt gets a child span
// "dbop.attempt", and the attempt runs with a context carrying that span, so
// spans started by database driver instrumentation (otelpgx, otelsql, …) nest
// under the attempt that issued them. The wait between attempts lies inside
// the operation span and outside every attempt span.
//
// Both spans carry the attributes given by [WithDBSystem] and
// [WithAttributes], and dbop.operation.name when the operation is named.
// Then, when they end:
//
//	attribute            type    on                  value
//	dbop.attempt         int     attempt             the attempt number, from 1
//	dbop.attempts        int     operation           attempts made
//	dbop.outcome         string  attempt             success, retry (another attempt follows) or error (the last, failed)
//	                             operation           success, exhausted (gave up at an attempt or time limit) or error
//	dbop.verdict         string  failed attempt      the error's verdict: unclassified, not-retryable,
//	                             failed operation    retry-statement, retry-transaction or ambiguous
//	dbop.retry.delay     double  retried attempt     the wait before the next attempt, in seconds
//	error.type           string  failed attempt      see below
//	                             failed operation
//
// A failed attempt's span records its error as an exception event
// (span.RecordError) and has status Error with the error's message. The
// operation span has status Error only when the operation failed, and
// records the error the operation returned; a success leaves the status
// Unset, as the conventions ask of instrumentation.
//
// When a transaction scope with ResolveCommit (pgxdb, sqldb, gormdb) learns
// what became of a COMMIT whose answer was lost, the attempt span gets an
// event "dbop.commit_resolved" ([CommitResolvedEvent]) with
// dbop.commit.resolution (committed, not-written, aborted or unresolved),
// dbop.commit.resolution.duration (seconds) and, when unresolved,
// exception.message saying why. It is the one trace of a resolution that
// ends in success. The Observer adds it through scopes.OnCommitResolved,
// after any function the caller set there.
//
// error.type is a low-cardinality class of the error, looked up through
// dbop's own wrappers: an ErrorType() string method if the error has one;
// else the SQLSTATE of an error with an SQLState() string method (such as
// *pgconn.PgError), as the database conventions ask; else
// "context.DeadlineExceeded" or "context.Canceled"; else the error's type
// name, as [semconv.ErrorType] gives it.
//
// # Metrics
//
// Instrument names follow the OpenTelemetry conventions (lower case, dotted,
// units in UCUM). Every data point carries the attributes of [WithDBSystem]
// and [WithAttributes], and dbop.operation.name when the operation is named.
//
//	instrument               kind             unit         attributes
//	dbop.operations          Int64Counter     {operation}  dbop.outcome (success, exhausted, error); error.type on failure
//	dbop.operation.duration  Float64Histogram s            as dbop.operations; from the first attempt's start to the end,
//	                                                       waits included; buckets 5ms … 10s
//	dbop.attempts            Int64Counter     {attempt}    dbop.outcome (success, retry, error)
//	dbop.retries             Int64Counter     {retry}      dbop.verdict of the error that was retried
//
// dbop.operation.name is a metric attribute, so each name is a time series
// of every instrument, and the names given to [dbop.Named] should be
// constants, never built from request data. The cardinality is bounded all
// the same: an Observer's metrics report its first 100 distinct names
// ([WithMaxOperationNames] sets the cap) and every later one as
// [OverflowOperationName], "dbop.other"; the first name past the cap is
// reported to [otel.Handle]. Spans keep every name: a span is one record,
// not a series. The attributes of the names under the cap are computed once;
// those of a name past it, on each call.
//
// # Providers
//
// [NewObserver] uses the global tracer and meter providers as they are when
// it is called, unless [WithTracerProvider] or [WithMeterProvider] says
// otherwise; call it after installing the SDK. Both the tracer and the meter
// are named [ScopeName] and carry the schema URL of the semantic conventions
// whose attribute names this package uses (semconv v1.43.0).
package otel
