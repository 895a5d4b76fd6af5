package demo

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestLockedWriterConcurrentWrites writes lines from many goroutines at
// once: each must arrive whole (and the race detector must stay quiet about
// the bytes.Buffer underneath).
func TestLockedWriterConcurrentWrites(t *testing.T) {
	const goroutines, lines = 8, 200
	var buf bytes.Buffer
	w := Locked(&buf)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "goroutine %d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != goroutines*lines {
		t.Fatalf("%d lines, want %d", len(got), goroutines*lines)
	}
	seen := map[string]bool{}
	for _, line := range got {
		var g, i int
		if _, err := fmt.Sscanf(line, "goroutine %d line %d", &g, &i); err != nil {
			t.Fatalf("line %q is not whole: %v", line, err)
		}
		seen[line] = true
	}
	if len(seen) != goroutines*lines {
		t.Errorf("%d distinct lines, want %d", len(seen), goroutines*lines)
	}
}

func TestLockedWriterReturnsUnderlyingResult(t *testing.T) {
	var buf bytes.Buffer
	n, err := Locked(&buf).Write([]byte("hello"))
	if n != 5 || err != nil || buf.String() != "hello" {
		t.Errorf("Write = %d, %v, buffer %q; want 5, nil, \"hello\"", n, err, buf.String())
	}
}
