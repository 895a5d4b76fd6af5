package dbop_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbop-go/dbop"
)

type User struct {
	ID   int
	Name string
}

type Order struct{ ID, UserID int }

// ordersOf has the shape Then takes: a repository method fits as it is.
func ordersOf(ctx context.Context, u User) ([]Order, error) {
	return []Order{{ID: 100, UserID: u.ID}, {ID: 101, UserID: u.ID}}, nil
}

func ExampleThen() {
	getUser := dbop.Op[User](func(context.Context) (User, error) { return User{ID: 7, Name: "ada"}, nil })

	orders, err := dbop.Then(getUser, ordersOf).Run(context.Background())
	fmt.Println(orders, err)
	// Output: [{100 7} {101 7}] <nil>
}

// A second step that cannot fail converts the first one's value.
func ExampleThen_convert() {
	getUser := dbop.Op[User](func(context.Context) (User, error) { return User{ID: 7, Name: "ada"}, nil })

	name, err := dbop.Then(getUser, func(_ context.Context, u User) (string, error) {
		return strings.ToUpper(u.Name), nil
	}).Run(context.Background())
	fmt.Println(name, err)
	// Output: ADA <nil>
}

// Results come back in the order of the ops, whichever finishes first.
func ExampleAll() {
	count := func(table string, n int) dbop.Op[int] {
		return func(context.Context) (int, error) { return n, nil }
	}
	counts, err := dbop.All(2, // at most two queries at once
		count("users", 3),
		count("orders", 12),
		count("invoices", 5),
	).Run(context.Background())
	fmt.Println(counts, err)
	// Output: [3 12 5] <nil>
}

// The first failure cancels the others, and it, not their
// context.Canceled, is what All returns.
func ExampleAll_failure() {
	errDenied := errors.New("permission denied for table invoices")
	slow := dbop.Op[int](func(ctx context.Context) (int, error) {
		<-ctx.Done() // a query that would run long, cancelled
		return 0, ctx.Err()
	})
	denied := dbop.Op[int](func(context.Context) (int, error) { return 0, errDenied })

	_, err := dbop.All(0, slow, denied, slow).Run(context.Background())
	fmt.Println(err)
	// Output: permission denied for table invoices
}

func ExampleAllKeyed() {
	count := func(n int) dbop.Op[int] {
		return func(context.Context) (int, error) { return n, nil }
	}
	counts, err := dbop.AllKeyed(0, map[string]dbop.Op[int]{
		"users":  count(3),
		"orders": count(12),
	}).Run(context.Background())
	fmt.Println(counts, err)
	// Output: map[orders:12 users:3] <nil>
}

// Five concurrent requests for the same user make one query. The query
// waits until every caller has started, then a little longer so that they
// have all joined it; the tests prove the sharing without sleeping, under
// testing/synctest.
func ExampleFlight_Share() {
	var users dbop.Flight // one per kind of read, kept next to the pool
	const callers = 5
	var queries atomic.Int32
	var asked sync.WaitGroup
	asked.Add(callers)

	getUser := func(id int) dbop.Op[User] {
		return func(context.Context) (User, error) {
			queries.Add(1)
			asked.Wait()
			time.Sleep(50 * time.Millisecond)
			return User{ID: id, Name: "ada"}, nil
		}
	}

	names := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			asked.Done()
			u, _ := getUser(7).With(
				users.Share("user:7"),           // outermost: the whole read is shared,
				dbop.WithTimeout(5*time.Second), // bounded, since no caller can cancel it,
				dbop.WithRetry(dbop.Constant(0)),
			).Run(context.Background())
			names[i] = u.Name
		})
	}
	wg.Wait()
	fmt.Println(names, "from", queries.Load(), "query")
	// Output: [ada ada ada ada ada] from 1 query
}

// A Flight for an Op stored once, keyed by the tenant its context carries.
func ExampleFlight_ShareBy() {
	type tenantKey struct{}
	var settings dbop.Flight
	load := dbop.Op[string](func(ctx context.Context) (string, error) {
		return "settings of " + ctx.Value(tenantKey{}).(string), nil
	}).With(settings.ShareBy(func(ctx context.Context) (string, bool) {
		tenant, ok := ctx.Value(tenantKey{}).(string)
		return "settings:" + tenant, ok
	}))

	s, err := load.Run(context.WithValue(context.Background(), tenantKey{}, "acme"))
	fmt.Println(s, err)
	// Output: settings of acme <nil>
}

// Ten operations, a bulkhead of two: never more than two attempts reach the
// database at once, retries included.
func ExampleBulkhead() {
	pool := dbop.Bulkhead(2) // one per connection pool, shared by every pipeline using it
	resilient := dbop.Chain(
		dbop.WithRetry(dbop.Constant(0)),
		pool, // inside the retry: caps attempts
	)

	var (
		mu            sync.Mutex
		running, peak int
		full          = make(chan struct{})
		fill          sync.Once
	)
	query := dbop.Op[int](func(context.Context) (int, error) {
		mu.Lock()
		running++
		peak = max(peak, running)
		if running == 2 {
			fill.Do(func() { close(full) }) // the first two wait for each other
		}
		mu.Unlock()
		<-full
		mu.Lock()
		running--
		mu.Unlock()
		return 1, nil
	}).With(resilient)

	ops := slices.Repeat([]dbop.Op[int]{query}, 10)
	results, err := dbop.All(0, ops...).Run(context.Background())
	fmt.Println(len(results), err, "at most", peak, "at once")
	// Output: 10 <nil> at most 2 at once
}

// During an outage a shared budget refuses most retries: a bucket of 2
// tokens, refilled by 0.25 a first attempt, each retry costing 1.
func ExampleBudget() {
	budget := &dbop.Budget{Ratio: 0.25, Max: 2}
	down := dbop.Classify(errors.New("connection refused"), dbop.RetryTransaction)
	query := dbop.Op[int](func(context.Context) (int, error) { return 0, down }).
		With(dbop.WithRetry(dbop.Constant(0), dbop.MaxAttempts(3), dbop.WithBudget(budget)))

	for i := 1; i <= 6; i++ {
		_, err := query.Run(context.Background())
		var re *dbop.RetryError
		errors.As(err, &re)
		fmt.Printf("operation %d: %d attempts, budget exhausted: %v\n", i, re.Attempts, errors.Is(err, dbop.ErrBudgetExhausted))
	}
	// Output:
	// operation 1: 3 attempts, budget exhausted: false
	// operation 2: 1 attempts, budget exhausted: true
	// operation 3: 1 attempts, budget exhausted: true
	// operation 4: 1 attempts, budget exhausted: true
	// operation 5: 2 attempts, budget exhausted: true
	// operation 6: 1 attempts, budget exhausted: true
}

// One budget serves every retry that loads the same database, whatever the
// result type; keep it next to the pool.
func ExampleWithBudget() {
	// The default Ratio (0.1) and Max (100 tokens), with a floor of 5
	// retries a second for when the bucket is empty.
	budget := &dbop.Budget{MinRate: 5}
	resilient := dbop.Chain(
		dbop.WithRetry(dbop.Exponential(20*time.Millisecond, time.Second), dbop.WithBudget(budget)),
	)
	n, err := dbop.Op[int](func(context.Context) (int, error) { return 3, nil }).With(resilient).Run(context.Background())
	fmt.Println(n, err)
	// Output: 3 <nil>
}
