package testdb

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// The clusters are shared by every test package that uses them, and go test
// runs packages in parallel: internal/clustertest kills, pauses and
// promotes nodes, which would fail another package's test that happens to
// use the same node at that moment. So a test that asks for a cluster's
// addresses ([Galera], [PGFailover]) holds a lock, shared by every process
// on the machine, until it ends. Within one process the lock is taken once
// and counted, so that nested and parallel tests of one package share it.
var clusterLock struct {
	mu   sync.Mutex
	n    int
	file *os.File
}

// lockPath is the lock file: the same for every process of the machine.
func lockPath() string { return filepath.Join(os.TempDir(), "dbop-cluster-tests.lock") }

// lockClusters takes the machine-wide cluster lock for tb, waiting for
// another process's tests to release it, and releases it when tb ends.
func lockClusters(tb testing.TB) {
	tb.Helper()
	clusterLock.mu.Lock()
	defer clusterLock.mu.Unlock()
	if clusterLock.n == 0 {
		f, err := os.OpenFile(lockPath(), os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			tb.Fatalf("cluster test lock: %v", err)
		}
		if err := lockFile(f); err != nil {
			f.Close()
			tb.Fatalf("cluster test lock %s: %v", lockPath(), err)
		}
		clusterLock.file = f
	}
	clusterLock.n++
	tb.Cleanup(func() {
		clusterLock.mu.Lock()
		defer clusterLock.mu.Unlock()
		if clusterLock.n--; clusterLock.n == 0 {
			_ = unlockFile(clusterLock.file)
			clusterLock.file.Close()
			clusterLock.file = nil
		}
	})
}
