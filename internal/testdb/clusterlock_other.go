//go:build !unix

package testdb

import "os"

// The clusters run only where scripts/clusters.sh does (Linux): elsewhere
// there is nothing to share, and no lock.
func lockFile(*os.File) error   { return nil }
func unlockFile(*os.File) error { return nil }
