// Gorm: serialization failures on PostgreSQL through GORM, retried by dbop
// as whole transactions.
//
//	DBOP_POSTGRES_DSN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' go run ./examples/gorm
//
// Two GORM models, Account and Transfer, live in the tables
// example_gorm_accounts and example_gorm_transfers, which the program drops
// and creates again with AutoMigrate at the start (and leaves behind to look
// at). GORM runs on gorm.io/driver/postgres, that is pgx v5 through
// database/sql.
//
// Each transfer is a read-modify-write transaction at the SERIALIZABLE
// isolation level: it loads both accounts (tx.First), computes their new
// balances, saves them and creates a Transfer row. A SERIALIZABLE
// transaction reads a snapshot taken at its first statement, and when it
// then writes a row that another transaction changed and committed since,
// PostgreSQL fails it with SQLSTATE 40001 ("could not serialize access due
// to concurrent update"): its reads are stale, so only running it again
// from BEGIN, reads included, can succeed. [gormdb.InTx] runs each transfer
// in a transaction of its own per attempt, its classifier calls 40001
// RetryTransaction, and [dbop.WithRetry] runs the whole function again.
// The transfers write the two accounts in the order of their ids, so they
// conflict without deadlocking.
//
// Phase 1 forces one such conflict with channels, so it happens on every
// run: two transfers from the same account both read it, one commits, and
// only then does the other write. In phase 2 workers race, and how many
// conflicts they meet varies. At the end the program checks that money was
// neither created nor lost and that every transfer was recorded exactly
// once, with balances that agree with the records. It exits with status 1
// if not, and with status 2 when DBOP_POSTGRES_DSN is not set.
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
	"sync/atomic"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/examples/internal/demo"
)

// dsnVar is the environment variable that holds the connection string.
var dsnVar = demo.DSNVar{
	Name:    "DBOP_POSTGRES_DSN",
	What:    "a PostgreSQL connection string",
	Example: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
}

// Account is a balance; money moves between accounts.
type Account struct {
	ID      int64 // the primary key, by GORM's convention
	Balance int64
}

// TableName gives the model the example's own table.
func (Account) TableName() string { return "example_gorm_accounts" }

// Transfer records one committed movement of money. Its primary key is the
// transfer's own id, so a transfer applied twice could not go unnoticed.
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
	DSN       string
	Workers   int // phase 2: concurrent writers
	Transfers int // phase 2: transfers per writer
	Accounts  int
}

// report is what one run found.
type report struct {
	Transfers, Committed, GaveUp int
	Attempts                     int64
	ForcedConflicts              int            // 40001 retries in phase 1
	Retries                      map[string]int // by cause and verdict
	Balance                      int64          // sum of the balances: 0 when nothing was lost
	Recorded                     int64          // Transfer rows
	Disagreeing                  int64          // accounts whose balance differs from the records
	Elapsed                      time.Duration
}

// Consistent reports whether every transfer landed exactly once and the
// balances add up and agree with the records.
func (r report) Consistent() bool {
	return r.GaveUp == 0 && r.Committed == r.Transfers && r.Balance == 0 &&
		r.Recorded == int64(r.Committed) && r.Disagreeing == 0
}

func main() {
	var cfg config
	flag.IntVar(&cfg.Workers, "workers", 8, "phase 2: concurrent writers")
	flag.IntVar(&cfg.Transfers, "transfers", 15, "phase 2: transfers per writer")
	flag.IntVar(&cfg.Accounts, "accounts", 4, "accounts the transfers move money between")
	flag.Parse()
	cfg.DSN = dsnVar.MustGet("gorm example") // status 2 if it is not set

	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	rep, err := run(ctx, cfg, os.Stdout)
	demo.ExitOnFailure("gorm example", rep.Consistent(), err) // status 1 if the run or its check failed
}

func run(ctx context.Context, cfg config, out io.Writer) (report, error) {
	if cfg.DSN == "" {
		return report{}, errors.New(dsnVar.Message())
	}
	out = demo.Locked(out) // the workers report progress
	if cfg.Workers < 1 || cfg.Transfers < 1 || cfg.Accounts < 3 {
		return report{}, fmt.Errorf("need at least 1 worker, 1 transfer and 3 accounts, got %d, %d, %d", cfg.Workers, cfg.Transfers, cfg.Accounts)
	}
	// GORM logs every failed statement by default; the retries would fill
	// the screen with the very errors they heal.
	db, err := gorm.Open(postgres.Open(cfg.DSN), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return report{}, fmt.Errorf("%s: %w", dsnVar.Name, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return report{}, err
	}
	defer sqlDB.Close()
	sqlDB.SetMaxOpenConns(cfg.Workers)
	sqlDB.SetMaxIdleConns(cfg.Workers)
	if err := setup(ctx, db, cfg.Accounts); err != nil {
		return report{}, fmt.Errorf("setup: %w", err)
	}
	var version string
	if err := db.WithContext(ctx).Raw("SHOW server_version").Scan(&version).Error; err != nil {
		return report{}, err
	}
	fmt.Fprintf(out, "dbop gorm example: PostgreSQL %s through GORM, transfers at SERIALIZABLE\n", version)

	st := &demo.Stats{}          // attempts, and retries by cause and verdict
	phaseLog := &demo.PhaseLog{} // tells each retry of phase 1
	// One pipeline for every transfer, built once and shared by all the
	// goroutines: a whole-transaction retry with jittered backoff.
	resilient := dbop.Chain(
		dbop.WithRetry(
			dbop.FullJitter(dbop.Exponential(2*time.Millisecond, 100*time.Millisecond)),
			dbop.MaxAttempts(30),
			dbop.OnRetry(func(ctx context.Context, e dbop.RetryEvent) {
				// GORM's postgres driver runs pgx: the server's error is a
				// *pgconn.PgError, named by its SQLSTATE.
				why := demo.PostgresCause(e.Err) + " (" + e.Verdict.String() + ")"
				st.Retried(why)
				phaseLog.Printf("  transfer %s, attempt %d: %s; the transaction runs again\n", demo.ID(ctx), e.Attempt, why)
			}),
		),
		dbop.Before(st.Attempt),
	)

	start := time.Now()
	var rep report
	var committed, gaveUp atomic.Int64
	// do runs one transfer and returns the number of transfers committed
	// so far, or 0 if it gave up.
	do := func(ctx context.Context, t Transfer, afterRead func(context.Context) error) int64 {
		ctx = demo.WithID(ctx, t.ID) // for the OnRetry hook
		if _, err := move(db, t, afterRead).With(resilient).Run(ctx); err != nil {
			gaveUp.Add(1)
			fmt.Fprintf(out, "  transfer %s gave up: %v\n", t.ID, err)
			return 0
		}
		return committed.Add(1)
	}

	// Phase 1: two transfers from account 1 both read it; the first writes
	// and commits, and only then does the second write, with a snapshot
	// that is now stale.
	fmt.Fprintln(out, "phase 1: two transfers from account 1 both read it; one commits, then the other writes")
	phaseLog.Start(out)
	meet := demo.NewRendezvous(2)
	firstDone := make(chan struct{})
	wait1, leave1 := meet.Party()
	wait2, leave2 := meet.Party()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(firstDone)
		defer leave1()
		do(ctx, Transfer{ID: "forced-1", FromID: 1, ToID: 2, Amount: 10}, wait1)
	})
	wg.Go(func() {
		defer leave2()
		do(ctx, Transfer{ID: "forced-2", FromID: 1, ToID: 3, Amount: 10}, func(ctx context.Context) error {
			if err := wait2(ctx); err != nil {
				return err
			}
			return demo.Await(ctx, firstDone) // closed already on a retry
		})
	})
	wg.Wait()
	phaseLog.Stop()
	rep.Transfers += 2
	rep.ForcedConflicts = st.Caused("40001")
	attempts, retries := st.Snapshot()
	fmt.Fprintf(out, "  %d transfers committed, %d attempts: the one with stale reads ran again from BEGIN\n", committed.Load(), attempts)

	// Phase 2: workers race.
	fmt.Fprintf(out, "phase 2: %d workers × %d transfers among %d accounts\n", cfg.Workers, cfg.Transfers, cfg.Accounts)
	phase2 := cfg.Workers * cfg.Transfers
	rep.Transfers += phase2
	progress := int64(max(1, phase2/4))
	base := committed.Load()
	for w := range cfg.Workers {
		wg.Go(func() {
			for i := range cfg.Transfers {
				from := 1 + rand.Int64N(int64(cfg.Accounts))
				to := 1 + (from+rand.Int64N(int64(cfg.Accounts-1)))%int64(cfg.Accounts)
				t := Transfer{ID: fmt.Sprintf("w%d-t%d", w, i), FromID: from, ToID: to, Amount: 1 + rand.Int64N(9)}
				if n := do(ctx, t, nil) - base; n > 0 && n%progress == 0 {
					a, r := st.Snapshot()
					fmt.Fprintf(out, "  %4d transfers committed, %4d attempts, %3d retries so far\n", n, a-attempts, r-retries)
				}
			}
		})
	}
	wg.Wait()

	rep.Committed, rep.GaveUp = int(committed.Load()), int(gaveUp.Load())
	rep.Attempts, _ = st.Snapshot()
	rep.Retries = st.Retries()
	rep.Elapsed = time.Since(start)
	if err := check(ctx, db, &rep); err != nil {
		return rep, fmt.Errorf("check: %w", err)
	}
	printReport(out, rep)
	return rep, nil
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
// loads both accounts, runs afterRead (if not nil), saves the balances it
// computed from what it read, in the order of the accounts' ids, and
// creates t's record. Every statement's error is returned as soon as it
// fails, so that the driver's error reaches the classifier (see the
// gormdb documentation).
func move(db *gorm.DB, t Transfer, afterRead func(context.Context) error) dbop.Op[struct{}] {
	return gormdb.InTx(db, func(ctx context.Context, tx *gorm.DB) (struct{}, error) {
		var from, to Account
		if err := tx.First(&from, t.FromID).Error; err != nil {
			return struct{}{}, err
		}
		if err := tx.First(&to, t.ToID).Error; err != nil {
			return struct{}{}, err
		}
		if afterRead != nil {
			if err := afterRead(ctx); err != nil {
				return struct{}{}, err
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
				return struct{}{}, err
			}
		}
		record := t // a copy per attempt: Create may fill in fields
		return struct{}{}, tx.Create(&record).Error
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

func printReport(out io.Writer, r report) {
	s := demo.Finished(out, r.Elapsed)
	s.Row("operations", "%d (%d committed, %d gave up)", r.Transfers, r.Committed, r.GaveUp)
	s.Row("attempts", "%d (%.2f per operation)", r.Attempts, float64(r.Attempts)/float64(max(1, r.Transfers)))
	s.Row("retries", "%d", demo.Total(r.Retries))
	s.Causes(r.Retries)
	s.Check(r.Consistent(), "OK: no money created or lost, every transfer recorded exactly once",
		"sum of balances %d, %d transfer records for %d commits, %d balances disagree with the records",
		r.Balance, r.Recorded, r.Committed, r.Disagreeing)
}
