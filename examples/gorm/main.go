// Gorm: money transfers on PostgreSQL through GORM, each one a
// SERIALIZABLE transaction that gormdb.InTx runs and dbop.WithRetry runs
// again, from BEGIN, when PostgreSQL refuses it with a serialization
// failure.
//
//	DBOP_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' go run ./examples/gorm
//
// (or -dsn instead of the variable). The program drops and creates the
// tables example_gorm_accounts and example_gorm_transfers, and leaves them
// behind to look at.
//
// A transfer loads both accounts, computes their new balances, saves them
// and records itself. A SERIALIZABLE transaction reads a snapshot taken at
// its first statement; when it then writes a row another transaction has
// changed and committed since, PostgreSQL fails it with SQLSTATE 40001: its
// reads are stale, so only running it again, reads included, can succeed.
// gormdb.InTx gives each attempt a transaction of its own and calls 40001
// retry-transaction, and the retry runs the whole function again.
//
// First the program forces one such conflict, so that it happens on every
// run; then workers race. At the end it checks that no money was created or
// lost and that every transfer was recorded exactly once, and exits with
// status 1 if not (2 without a connection string).
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
)

// dsnVar holds the connection string when -dsn is not given.
const dsnVar = "DBOP_POSTGRES_DSN"

// errNoDSN says what to set.
var errNoDSN = errors.New("set " + dsnVar + " (or -dsn) to a PostgreSQL connection string, e.g.\n" +
	"\texport " + dsnVar + "='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'")

// Account is a balance; money moves between accounts.
type Account struct {
	ID      int64
	Balance int64
}

// TableName gives the model the example's own table.
func (Account) TableName() string { return "example_gorm_accounts" }

// Transfer records one committed movement of money. Its primary key is its
// own id, so a transfer applied twice could not go unnoticed.
type Transfer struct {
	ID     string `gorm:"primaryKey"`
	FromID int64  `gorm:"not null"`
	ToID   int64  `gorm:"not null"`
	Amount int64  `gorm:"not null"`
}

// TableName gives the model the example's own table.
func (Transfer) TableName() string { return "example_gorm_transfers" }

// config is what one run does.
type config struct {
	DSN                          string
	Workers, Transfers, Accounts int
}

// report is what a run did and what it read back at the end.
type report struct {
	Committed, GaveUp int
	Attempts          int
	Retries           map[string]int // by SQLSTATE
	Balance           int64          // the sum of the balances: 0 if no money was created or lost
	Recorded          int64          // Transfer rows: one per commit
	Disagreeing       int64          // accounts whose balance the records do not explain
}

// Consistent reports whether every transfer landed exactly once and the
// balances add up and agree with the records.
func (r report) Consistent() bool {
	return r.GaveUp == 0 && r.Balance == 0 && r.Recorded == int64(r.Committed) && r.Disagreeing == 0
}

func main() {
	cfg := config{}
	flag.StringVar(&cfg.DSN, "dsn", os.Getenv(dsnVar), "PostgreSQL connection string (default $"+dsnVar+")")
	flag.IntVar(&cfg.Workers, "workers", 8, "concurrent writers")
	flag.IntVar(&cfg.Transfers, "transfers", 15, "transfers per writer")
	flag.IntVar(&cfg.Accounts, "accounts", 4, "accounts the money moves between")
	flag.Parse()
	if cfg.DSN == "" {
		fmt.Fprintln(os.Stderr, "gorm example:", errNoDSN)
		os.Exit(2)
	}
	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	rep, err := run(ctx, cfg, os.Stdout)
	if err == nil && !rep.Consistent() {
		err = errors.New("the consistency check FAILED")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gorm example:", err)
		os.Exit(1)
	}
}

// told is the context key under which the forced conflict's transfers
// carry their id, for the OnRetry hook to tell their retries; the race's
// are only counted.
type told struct{}

func run(ctx context.Context, cfg config, out io.Writer) (report, error) {
	if cfg.DSN == "" {
		return report{}, errNoDSN
	}
	if cfg.Workers < 1 || cfg.Transfers < 1 || cfg.Accounts < 3 {
		return report{}, fmt.Errorf("need at least 1 worker, 1 transfer and 3 accounts, got %d, %d, %d", cfg.Workers, cfg.Transfers, cfg.Accounts)
	}
	// GORM logs every failed statement by default; the retries would fill
	// the screen with the very errors they heal.
	db, err := gorm.Open(postgres.Open(cfg.DSN), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return report{}, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return report{}, err
	}
	defer sqlDB.Close()
	if err := setup(ctx, db, cfg.Accounts); err != nil {
		return report{}, fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintf(out, "dbop gorm example: %d accounts, transfers at SERIALIZABLE through GORM\n", cfg.Accounts)

	var mu sync.Mutex // guards rep and out
	rep := report{Retries: map[string]int{}}
	// One pipeline for every transfer, built once and shared by all the
	// goroutines: a whole-transaction retry with jittered backoff, and a
	// count of the attempts.
	resilient := dbop.Chain(
		dbop.WithRetry(
			dbop.FullJitter(dbop.Exponential(2*time.Millisecond, 100*time.Millisecond)),
			dbop.MaxAttempts(30),
			dbop.OnRetry(func(ctx context.Context, e dbop.AttemptEvent) {
				code := "other"
				if se, ok := errors.AsType[interface {
					error
					SQLState() string
				}](e.Err); ok {
					code = se.SQLState()
				}
				mu.Lock()
				defer mu.Unlock()
				rep.Retries[code]++
				if id, ok := ctx.Value(told{}).(string); ok {
					fmt.Fprintf(out, "  transfer %s, attempt %d: %s (%v); the transaction runs again\n", id, e.Attempt, code, e.Verdict)
				}
			}),
		),
		dbop.Before(func(context.Context) error { mu.Lock(); rep.Attempts++; mu.Unlock(); return nil }),
	)
	do := func(ctx context.Context, t Transfer, afterRead func(context.Context) error) {
		_, err := move(db, t, afterRead).With(resilient).Run(ctx)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			rep.GaveUp++
			fmt.Fprintf(out, "  transfer %s gave up: %v\n", t.ID, err)
			return
		}
		rep.Committed++
	}

	// The forced conflict: forced-2 reads account 1, forced-1 then moves
	// money out of it and commits, and only then does forced-2 write, with
	// a snapshot that is now stale.
	fmt.Fprintln(out, "forced conflict: forced-1 commits between forced-2's reads and its writes")
	read, committed, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	first := true // forced-2's goroutine only
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		do(context.WithValue(ctx, told{}, "forced-2"), Transfer{ID: "forced-2", FromID: 1, ToID: 3, Amount: 10}, func(ctx context.Context) error {
			if !first {
				return nil // a retry reads afresh and goes on
			}
			first = false
			close(read)
			return wait(ctx, committed)
		})
	})
	select {
	case <-read:
	case <-done: // forced-2 failed before reading; no conflict then
	}
	do(context.WithValue(ctx, told{}, "forced-1"), Transfer{ID: "forced-1", FromID: 1, ToID: 2, Amount: 10}, nil)
	close(committed)
	wg.Wait()

	fmt.Fprintf(out, "race: %d workers × %d transfers\n", cfg.Workers, cfg.Transfers)
	for w := range cfg.Workers {
		wg.Go(func() {
			for i := range cfg.Transfers {
				from := 1 + rand.Int64N(int64(cfg.Accounts))
				to := 1 + (from+rand.Int64N(int64(cfg.Accounts-1)))%int64(cfg.Accounts)
				do(ctx, Transfer{ID: fmt.Sprintf("w%d-t%d", w, i), FromID: from, ToID: to, Amount: 1 + rand.Int64N(9)}, nil)
			}
		})
	}
	wg.Wait()

	if err := check(ctx, db, &rep); err != nil {
		return rep, fmt.Errorf("check: %w", err)
	}
	fmt.Fprintf(out, "%d committed, %d gave up, %d attempts, retries by SQLSTATE %v\n", rep.Committed, rep.GaveUp, rep.Attempts, rep.Retries)
	verdict := "OK: no money created or lost, every transfer recorded exactly once"
	if !rep.Consistent() {
		verdict = "FAILED"
	}
	fmt.Fprintf(out, "check: sum of balances %d, %d transfer records, %d balances disagree with the records: %s\n",
		rep.Balance, rep.Recorded, rep.Disagreeing, verdict)
	return rep, nil
}

// wait waits until ch is closed or ctx ends.
func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func setup(ctx context.Context, db *gorm.DB, accounts int) error {
	db = db.WithContext(ctx)
	if err := db.Migrator().DropTable(&Transfer{}, &Account{}); err != nil {
		return err
	}
	if err := db.AutoMigrate(&Account{}, &Transfer{}); err != nil {
		return err
	}
	seed := make([]Account, accounts)
	for i := range seed {
		seed[i] = Account{ID: int64(i + 1)}
	}
	return db.Create(&seed).Error
}

// move returns transfer t as an operation: a SERIALIZABLE transaction that
// loads both accounts, runs afterRead (if any), saves the balances it
// computed from what it read, in the order of the accounts' ids so that
// transfers conflict without deadlocking, and records t. Each statement's
// error is returned as soon as it fails, so that the driver's error reaches
// the classifier (see the gormdb documentation).
func move(db *gorm.DB, t Transfer, afterRead func(context.Context) error) dbop.Op[struct{}] {
	return gormdb.Do(db, func(ctx context.Context, tx *gorm.DB) error {
		var from, to Account
		if err := tx.First(&from, t.FromID).Error; err != nil {
			return err
		}
		if err := tx.First(&to, t.ToID).Error; err != nil {
			return err
		}
		if afterRead != nil {
			if err := afterRead(ctx); err != nil {
				return err
			}
		}
		from.Balance -= t.Amount
		to.Balance += t.Amount
		first, second := &from, &to
		if second.ID < first.ID {
			first, second = second, first
		}
		for _, a := range []*Account{first, second} {
			if err := tx.Model(a).Update("balance", a.Balance).Error; err != nil {
				return err
			}
		}
		record := t // a copy per attempt: Create may fill in fields
		return tx.Create(&record).Error
	}, gormdb.Isolation(sql.LevelSerializable))
}

// check reads back what the run committed.
func check(ctx context.Context, db *gorm.DB, rep *report) error {
	db = db.WithContext(ctx)
	if err := db.Model(&Account{}).Select("coalesce(sum(balance), 0)").Scan(&rep.Balance).Error; err != nil {
		return err
	}
	if err := db.Model(&Transfer{}).Count(&rep.Recorded).Error; err != nil {
		return err
	}
	// An account's balance is what the records say came in less what went
	// out.
	return db.Raw(`SELECT count(*) FROM example_gorm_accounts a WHERE a.balance <> (
		SELECT coalesce(sum(CASE WHEN t.to_id = a.id THEN t.amount ELSE -t.amount END), 0)
		FROM example_gorm_transfers t WHERE a.id IN (t.from_id, t.to_id))`).Scan(&rep.Disagreeing).Error
}
