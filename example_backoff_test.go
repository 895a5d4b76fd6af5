package dbop_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/dboptest"
)

// Exponential doubles the delay before each retry until it reaches the cap.
func ExampleExponential() {
	b := dbop.Exponential(100*time.Millisecond, time.Second)
	for n := 1; n <= 6; n++ {
		fmt.Print(b.Delay(n, 0, 0), " ")
	}
	fmt.Println()
	// Output:
	// 100ms 200ms 400ms 800ms 1s 1s
}

// Jitter varies each delay of an exponential backoff by up to ±20%, and
// never beyond its 2s cap: at the cap, the delay is spread over [1.6s, 2s].
// dboptest.Schedule, given a seeded source, lists the delays a retry would
// wait.
func ExampleJitter() {
	b := dbop.Jitter(dbop.Exponential(100*time.Millisecond, 2*time.Second), 0.2)
	for i, d := range dboptest.Schedule(b, 6, rand.NewPCG(1, 2)) {
		fmt.Printf("retry %d: %v\n", i+1, d.Round(time.Millisecond))
	}
	// Output:
	// retry 1: 111ms
	// retry 2: 209ms
	// retry 3: 446ms
	// retry 4: 895ms
	// retry 5: 1.43s
	// retry 6: 1.616s
}
