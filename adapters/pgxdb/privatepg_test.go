package pgxdb_test

import (
	"context"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dbop-go/dbop/internal/testdb"
)

// pgBin holds the PostgreSQL 15 server binaries the private servers run.
const pgBin = "/usr/lib/postgresql/15/bin"

// privatePG starts a PostgreSQL server of the test's own, with conf
// appended to its postgresql.conf, and returns its DSN (user postgres,
// database postgres); the server is stopped and its files removed when
// the test ends. It is for faults that the shared servers must not see: a
// backend killed (a crash-restart), a synchronous standby that never
// confirms. Without the binaries the test is skipped, or fails under
// DBOP_TEST_REQUIRE. As root, the server runs as the user postgres.
func privatePG(t *testing.T, conf string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		if testdb.Required() {
			t.Fatalf("a private PostgreSQL server needs %s/initdb: %v", pgBin, err)
		}
		t.Skipf("a private PostgreSQL server needs %s/initdb: %v", pgBin, err)
	}
	dir, err := os.MkdirTemp("", "dbop-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	run := func(name string, args ...string) {
		t.Helper()
		cmd := osexec.Command(filepath.Join(pgBin, name), args...)
		if os.Geteuid() == 0 {
			cmd = osexec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(pgBin, name)}, args...)...)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	if os.Geteuid() == 0 {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := osexec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown postgres %s: %v\n%s", dir, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-N")
	port := freePort(t)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\nport = " + strconv.Itoa(port) + "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '" + dir +
		"'\nfsync = off\nmax_connections = 20\nshared_buffers = 16MB\n" + conf + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "start")
	t.Cleanup(func() {
		run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Logf("the private server's log:\n%s", log)
		}
	})
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/postgres?sslmode=disable"
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
