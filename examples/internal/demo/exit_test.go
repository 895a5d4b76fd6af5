package demo

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFailed(t *testing.T) {
	tests := []struct {
		name       string
		ok         bool
		err        error
		wantFailed bool
		wantStderr string
	}{
		{"passed", true, nil, false, ""},
		{"run failed", false, errors.New("setup: no such table"), true, "pgx example: setup: no such table\n"},
		{"run failed, the error wins", true, errors.New("check: timeout"), true, "pgx example: check: timeout\n"},
		{"check failed", false, nil, true, "pgx example: CONSISTENCY CHECK FAILED\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			got := failed(&stderr, "pgx example", tt.ok, tt.err)
			if got != tt.wantFailed {
				t.Errorf("failed = %v, want %v", got, tt.wantFailed)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExitOnFailure runs ExitOnFailure in a child process: a failed check
// must end it with status 1, and a passed one must let it return.
func TestExitOnFailure(t *testing.T) {
	switch os.Getenv("DEMO_EXIT_ON_FAILURE") {
	case "failed":
		ExitOnFailure("demo", false, nil)
		t.Fatal("ExitOnFailure returned after a failed check")
	case "passed":
		ExitOnFailure("demo", true, nil)
		return
	}
	tests := []struct {
		mode       string
		wantStatus int
	}{
		{"failed", 1},
		{"passed", 0},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestExitOnFailure$")
			cmd.Env = append(os.Environ(), "DEMO_EXIT_ON_FAILURE="+tt.mode)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			status := 0
			if exit, ok := errors.AsType[*exec.ExitError](err); ok {
				status = exit.ExitCode()
			} else if err != nil {
				t.Fatalf("run: %v", err)
			}
			if status != tt.wantStatus {
				t.Errorf("exit status %d, want %d\n%s", status, tt.wantStatus, stderr.String())
			}
		})
	}
}
