package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := run(ctx, config{Workers: 8, Transfers: 40, Accounts: 3, Path: t.TempDir() + "/bank.db"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !rep.Consistent() {
		t.Fatalf("inconsistent: %+v\n%s", rep, out.String())
	}
	if rep.Attempts <= int64(rep.Operations) {
		t.Errorf("%d attempts for %d operations: the writers never contended, so the example shows nothing", rep.Attempts, rep.Operations)
	}
	for _, want := range []string{"320 committed, 0 gave up", "SQLITE_BUSY", "OK: no money created or lost"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestQuickstartRejectsBadInput(t *testing.T) {
	_, err := run(context.Background(), config{Workers: 0, Transfers: 1, Accounts: 2}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "at least 1 worker") {
		t.Fatalf("err = %v, want a message naming the bad input", err)
	}
}
