//go:build !cgo

package mattnsqlite_test

import "testing"

// Without cgo there is nothing to test: mattn/go-sqlite3 is a stub and
// Classify is not built. Saying so beats "no test files".
func TestNeedsCgo(t *testing.T) {
	t.Skip("mattnsqlite needs cgo: mattn/go-sqlite3 is a stub when CGO_ENABLED=0; " +
		"set CGO_ENABLED=1 with a C compiler on PATH to run these tests")
}
