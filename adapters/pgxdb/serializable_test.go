package pgxdb_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/pgxdb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// balanceConflict runs the read-modify-write race of two SERIALIZABLE
// transactions on table (one row, id 1, balance 100), forced by barriers:
// the loser reads, the winner reads, writes +20 and commits, and then the
// loser writes its read value +10, which fails with 40001. loser is built
// by mkLoser from its fn; it records the balance each of its runs read.
func balanceConflict(t *testing.T, winnerPool *pgxpool.Pool, table string,
	mkLoser func(fn func(context.Context, pgx.Tx) (int, error)) dbop.Op[int]) (loserReads []int, loserErr error) {
	t.Helper()
	ident := pgx.Identifier{table}.Sanitize()
	read := func(ctx context.Context, tx pgx.Tx) (int, error) {
		var b int
		err := tx.QueryRow(ctx, "SELECT balance FROM "+ident+" WHERE id = 1").Scan(&b)
		return b, err
	}
	write := func(ctx context.Context, tx pgx.Tx, b int) error {
		_, err := tx.Exec(ctx, "UPDATE "+ident+" SET balance = $1 WHERE id = 1", b)
		return err
	}

	loserRead := make(chan struct{})
	winnerDone := make(chan struct{})
	var mu sync.Mutex
	loser := mkLoser(func(ctx context.Context, tx pgx.Tx) (int, error) {
		b, err := read(ctx, tx)
		if err != nil {
			return 0, err
		}
		mu.Lock()
		loserReads = append(loserReads, b)
		first := len(loserReads) == 1
		mu.Unlock()
		if first {
			close(loserRead)
			<-winnerDone
		}
		return b + 10, write(ctx, tx, b+10)
	})
	winner := pgxdb.InTx(winnerPool, func(ctx context.Context, tx pgx.Tx) (int, error) {
		<-loserRead
		b, err := read(ctx, tx)
		if err != nil {
			return 0, err
		}
		return b + 20, write(ctx, tx, b+20)
	}, pgxdb.Isolation(pgx.Serializable))

	var wg sync.WaitGroup
	wg.Go(func() { _, loserErr = loser.Run(t.Context()) })
	if _, err := winner.Run(t.Context()); err != nil {
		t.Errorf("winner: %v", err)
	}
	close(winnerDone)
	wg.Wait()
	return loserReads, loserErr
}

// Two SERIALIZABLE read-modify-write transactions conflict; the loser fails
// with 40001 and InTx under WithRetry runs its whole transaction again,
// reads included, so the final balance has both increments.
func TestSerializationFailureRestartsTransaction(t *testing.T) {
	pool := newPool(t, 4)
	createTable(t, pool, "pgxdb_serializable", "id int PRIMARY KEY, balance int NOT NULL",
		"INSERT INTO pgxdb_serializable VALUES (1, 100)")

	var rec retries
	reads, err := balanceConflict(t, pool, "pgxdb_serializable", func(fn func(context.Context, pgx.Tx) (int, error)) dbop.Op[int] {
		return pgxdb.InTx(pool, fn, pgxdb.Isolation(pgx.Serializable)).
			With(dbop.WithRetry(retryAtOnce, dbop.OnRetry(rec.record)))
	})
	if err != nil {
		t.Fatalf("loser: %v", err)
	}
	checkLog(t, []string{"40001"}, rec.codes())
	if want := []int{100, 120}; !slices.Equal(reads, want) {
		t.Errorf("the loser's runs read %v, want %v: the retry must read again in a new transaction", reads, want)
	}
	if b := queryInt(t, pool, "SELECT balance FROM pgxdb_serializable WHERE id = 1"); b != 130 {
		t.Errorf("balance = %d, want 130 (100 + 20 + 10)", b)
	}
}
