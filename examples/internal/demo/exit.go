package demo

import (
	"fmt"
	"io"
	"os"
)

// ExitOnFailure ends an example's main once its run has returned. If the
// run failed (err is not nil) or its consistency check did (ok is false),
// it says so on stderr, after name, and exits with status 1; otherwise it
// returns, and main ends with status 0.
func ExitOnFailure(name string, ok bool, err error) {
	if failed(os.Stderr, name, ok, err) {
		os.Exit(1)
	}
}

// failed tells w why a run failed, if it did, and reports whether it did.
func failed(w io.Writer, name string, ok bool, err error) bool {
	switch {
	case err != nil:
		fmt.Fprintln(w, name+":", err)
	case !ok:
		fmt.Fprintln(w, name+": CONSISTENCY CHECK FAILED")
	default:
		return false
	}
	return true
}
