package sqldb_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbop-go/dbop/adapters/mysqldb"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/scopes"
	"github.com/go-sql-driver/mysql"
)

// blackhole is a loopback proxy that, once a client chunk contains pattern,
// stops forwarding in both directions without closing anything: a network
// partition that drops packets (no FIN, no RST), as a failed switch or a
// firewall does, rather than faultproxy's cuts, which close the client's
// socket.
type blackhole struct {
	ln      net.Listener
	pattern []byte
	armed   atomic.Bool
	fired   atomic.Bool
	mu      sync.Mutex
	conns   []net.Conn
}

func startBlackhole(t *testing.T, target string, pattern []byte) *blackhole {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, pattern: pattern}
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var d net.Dialer
			s, err := d.DialContext(context.Background(), "tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, c, s)
			b.mu.Unlock()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if b.armed.Load() && bytes.Contains(buf[:n], b.pattern) {
							b.fired.Store(true)
							_, _ = io.Copy(io.Discard, c) // swallow everything from now on
							return
						}
						if b.fired.Load() {
							continue
						}
						if _, werr := s.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 && !b.fired.Load() {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return b
}

// dropAll closes both sides of every connection through b.
func (b *blackhole) dropAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
}

// go-sql-driver's COMMIT and ROLLBACK watch no context (docs/backends.md
// §4.7): when the server's packets are dropped (a partition without RST),
// neither RollbackTimeout nor the caller's deadline ends them, and they
// wait until TCP gives up. The DSN's readTimeout does bound them: here a
// COMMIT and a ROLLBACK whose packets are dropped end within a few seconds
// (readTimeout 1 s), the COMMIT as ambiguous. Each case checks that the
// statement did reach the black hole.
func TestMariaDBCommitBoundedByReadTimeout(t *testing.T) {
	for _, c := range []struct {
		name    string
		pattern string
		fail    bool // fn fails, so InTx rolls back
	}{
		{"COMMIT", "COMMIT", false},
		{"ROLLBACK", "ROLLBACK", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			direct := openMariaDB(t)
			name := table(t, direct, "sqldb_blackhole_"+strings.ToLower(c.name), "(id INT PRIMARY KEY)")
			bh := startBlackhole(t, mysqlAddr(t), []byte(c.pattern))
			cfg, err := mysql.ParseDSN(mariaDBVia(t, bh.ln.Addr().String()))
			if err != nil {
				t.Fatal(err)
			}
			cfg.ReadTimeout, cfg.WriteTimeout = time.Second, time.Second
			db := openSQL(t, "mysql", cfg.FormatDSN())
			failed := errors.New("fn failed")
			op := sqldb.InTx(db, mysqldb.MariaDB, func(ctx context.Context, tx *sql.Tx) (int, error) {
				_, err := tx.ExecContext(ctx, "INSERT INTO "+name+" VALUES (1)")
				bh.armed.Store(true)
				if err == nil && c.fail {
					err = failed
				}
				return 1, err
			}, sqldb.RollbackTimeout(time.Second))
			done := make(chan error, 1)
			start := time.Now()
			go func() { _, err := op.Run(t.Context()); done <- err }()
			select {
			case err := <-done:
				elapsed := time.Since(start)
				t.Logf("InTx returned after %v: %v", elapsed, err)
				if !bh.fired.Load() {
					t.Fatalf("the %s never reached the black hole", c.name)
				}
				if elapsed > 5*time.Second {
					t.Errorf("InTx took %v, want about readTimeout (1 s)", elapsed)
				}
				if !c.fail && !errors.Is(err, scopes.ErrAmbiguousCommit) {
					t.Errorf("Run = %v, want an ambiguous commit", err)
				}
				if c.fail && !errors.Is(err, failed) {
					t.Errorf("Run = %v, want fn's error", err)
				}
			case <-time.After(15 * time.Second):
				bh.dropAll()
				<-done
				t.Fatalf("InTx still blocked in %s after %v with readTimeout 1 s", c.name, time.Since(start))
			}
		})
	}
}
