package dbop_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/dbop-go/dbop"
)

// Exponential doubles the delay before each retry until it reaches the cap.
func ExampleExponential() {
	b := dbop.Exponential(100*time.Millisecond, time.Second)
	fmt.Println(dbop.Schedule(b, 6, nil))
	// Output:
	// [100ms 200ms 400ms 800ms 1s 1s]
}

// A seeded source makes a jittered schedule reproducible. Here each delay of
// an exponential backoff is varied by up to ±20%, and never beyond its 2s
// cap: at the cap, the delay is spread over [1.6s, 2s].
func ExampleSchedule() {
	b := dbop.Jitter(dbop.Exponential(100*time.Millisecond, 2*time.Second), 0.2)
	for i, d := range dbop.Schedule(b, 6, rand.NewPCG(1, 2)) {
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
