// Package demotest holds test helpers for the examples, apart from package
// demo so that the example programs do not link the testing package.
package demotest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/dbop-go/dbop/examples/internal/demo"
)

// runMainEnv tells the child process of [CheckMainWithoutDSN] to run main.
const runMainEnv = "DBOP_EXAMPLE_RUN_MAIN"

// CheckMainWithoutDSN checks that main, an example's main function, says
// what to set and exits with status 2 when v is not set. It runs the
// calling test again in a child process, without v in its environment, and
// calls main there; the calling test must be a top-level test that calls
// CheckMainWithoutDSN first.
func CheckMainWithoutDSN(t *testing.T, v demo.DSNVar, main func()) {
	t.Helper()
	if os.Getenv(runMainEnv) == "1" {
		main()
		t.Fatal("main returned without a DSN")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$")
	cmd.Env = append(without(os.Environ(), v.Name), runMainEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if exit, ok := errors.AsType[*exec.ExitError](err); !ok || exit.ExitCode() != 2 {
		t.Fatalf("main without %s: %v, want exit status 2\n%s", v.Name, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), v.Message()) {
		t.Errorf("stderr = %q, want it to contain %q", stderr.String(), v.Message())
	}
}

// without returns env without the variable name.
func without(env []string, name string) []string {
	var kept []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			kept = append(kept, kv)
		}
	}
	return kept
}
