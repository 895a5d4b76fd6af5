package pgxdb_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// An Op of the user's own under a HotSpot (docs/contention.md, "Where no
// lock is taken"; ClassifyBy after the HotSpot), whose COMMIT's answer
// comes back 600 ms late, after the server committed: the first attempt
// the HotSpot bounds has a backstop of 450 ms, which ends the context in
// the COMMIT, and pgx closes the connection. The cut is Ambiguous — the
// HotSpot cannot know where it fell in an Op that began its transaction
// by hand — and is not run again: the row lands once. Before, the cut was
// a *dbop.TimeoutError, retried whole, and the row landed twice (a
// review's test, 3 runs in 3). The same work through pgxdb.Do, whose
// COMMIT the deadline does not cut, lands once and succeeds.
func TestHotSpotCutOfYourOwnCommitIsAmbiguous(t *testing.T) {
	admin := newPool(t, 2)
	createTable(t, admin, "pgxdb_hot_ownop", "id bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY, k int NOT NULL")
	cc := admin.Config().ConnConfig
	addr := slowAnswerProxy(t, net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), []byte("COMMIT\x00"), 600*time.Millisecond)
	pool := newPool(t, 4, func(cfg *pgxpool.Config) {
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		cfg.ConnConfig.Host, cfg.ConnConfig.Port = host, uint16(p)
	})
	insert := func(ctx context.Context, tx pgx.Tx, k int) error {
		_, err := tx.Exec(ctx, "INSERT INTO pgxdb_hot_ownop (k) VALUES ($1)", k)
		return err
	}
	for _, c := range []struct {
		name string
		k    int
		op   func(attempts *int) dbop.Op[struct{}]
	}{
		{"an Op of your own", 1, func(attempts *int) dbop.Op[struct{}] {
			return func(ctx context.Context) (struct{}, error) {
				*attempts++
				tx, err := pool.Begin(ctx)
				if err != nil {
					return struct{}{}, err
				}
				defer tx.Rollback(context.Background())
				if err := insert(ctx, tx, 1); err != nil {
					return struct{}{}, err
				}
				return struct{}{}, tx.Commit(ctx)
			}
		}},
		{"pgxdb.Do", 2, func(attempts *int) dbop.Op[struct{}] {
			return pgxdb.Do(pool, func(ctx context.Context, tx pgx.Tx) error {
				*attempts++
				return insert(ctx, tx, 2)
			})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			hot := dbop.Chain(dbop.WithRetry(dbop.FullJitter(dbop.Exponential(5*time.Millisecond, time.Second)), dbop.MaxAttempts(50)), dbop.HotSpot())
			attempts := 0
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			_, err := c.op(&attempts).With(hot, dbop.ClassifyBy(pgxdb.Classifier)).Run(ctx)
			n := queryInt(t, admin, "SELECT count(*) FROM pgxdb_hot_ownop WHERE k = "+strconv.Itoa(c.k))
			t.Logf("Run = %v after %d attempts; %d rows", err, attempts, n)
			if n != 1 {
				t.Errorf("%d rows, want 1: the COMMIT the server applied ran again", n)
			}
			if c.k == 1 {
				var te *dbop.TimeoutError
				if dbop.VerdictOf(err) != dbop.Ambiguous || !errors.As(err, &te) || attempts != 1 {
					t.Errorf("Run = %v (verdict %v) after %d attempts; want the backstop's *dbop.TimeoutError, Ambiguous, after 1: the slow answer never reached the cut", err, dbop.VerdictOf(err), attempts)
				}
			} else if err != nil || attempts != 1 {
				t.Errorf("Run = %v after %d attempts; want nil after 1", err, attempts)
			}
		})
	}
}

// slowAnswerProxy forwards connections to target, holding for delay each
// chunk from the server that contains pattern (a CommandComplete tag).
// Its goroutines end with the connections and the listener, which t's
// cleanup closes.
func slowAnswerProxy(t *testing.T, target string, pattern []byte, delay time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			wg.Go(func() { io.Copy(s, c); s.Close() })
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						if bytes.Contains(buf[:n], pattern) {
							time.Sleep(delay)
						}
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}
