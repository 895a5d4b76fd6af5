package gormdb_test

// The generated fault pipelines of internal/faulttest (TestFaultGenerated*)
// through GORM: the money-transfer workload of internal/faultgen, each
// worker's pipeline and transfer shape drawn from the run's seed, built on
// gormdb.InTx, gormdb.Do and gormdb.InSavepoint, while the injector of
// PostgreSQL or MariaDB terminates, cancels and kills the workers'
// connections and statements, holds row locks, and drops and cuts the
// proxied connections, also right after COMMIT reached the server.
// faultgen.Verify checks what each caller was told against the ledger and
// the balances, and faultgen.CheckFaults that every kind of fault fired.
// The log names every worker's pipeline and the seed; DBOP_FAULT_SEED
// replays it, DBOP_GEN_ROUNDS and DBOP_FAULT_DURATION make a long run
// (see internal/faultgen):
//
//	DBOP_GEN_ROUNDS=20 DBOP_FAULT_DURATION=30s go test -count=1 -timeout 60m -run TestFaultGeneratedGORM ./adapters/gormdb

import (
	"context"
	"io"
	"log"
	"os"
	"testing"
	"time"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/gormdb"
	"github.com/dbop-go/dbop/internal/faultgen"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// gormGenTx is a GORM transaction as a generated leg uses it; sp are the
// options of its savepoints (the MariaDB dialect).
type gormGenTx struct {
	tx *gorm.DB
	sp []gormdb.SavepointOption
}

func (t gormGenTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	r := t.tx.WithContext(ctx).Exec(q, args...)
	return r.RowsAffected, r.Error
}

func (t gormGenTx) QueryInt(ctx context.Context, q string, args ...any) (int64, error) {
	var v int64
	err := t.tx.WithContext(ctx).Raw(q, args...).Row().Scan(&v)
	return v, err
}

// Savepoint is gormdb.InSavepoint, which has no lock timeout of its own.
func (t gormGenTx) Savepoint(time.Duration) dbop.Decorator { return gormdb.InSavepoint(t.tx, t.sp...) }

// gormOptions are gormdb's transaction options. LockTimeout and
// StatementTimeout are PostgreSQL's only: the MariaDB backend does not
// draw them.
var gormOptions = faultgen.TxOptions[gormdb.TxOption]{
	LockTimeout:      gormdb.LockTimeout,
	StatementTimeout: gormdb.StatementTimeout,
	ClassifyBy:       func(c dbop.Classifier) gormdb.TxOption { return gormdb.ClassifyBy(c) },
	ResolveCommit:    gormdb.ResolveCommit,
	ReadOnly:         gormdb.ReadOnly,
	Isolation:        gormdb.Isolation,
}

// gormBackend sets be's InTx and Do on the workers' dbs, with opts (the
// dialect) on every transaction and savepoint.
func gormBackend(be *faultgen.Backend, dbs []*gorm.DB, opts ...gormdb.Option) {
	var sp []gormdb.SavepointOption
	for _, o := range opts {
		sp = append(sp, o)
	}
	txOpts := func(o faultgen.TxOpts) []gormdb.TxOption {
		txo := gormOptions.Of(o, be)
		for _, o := range opts {
			txo = append(txo, o)
		}
		return txo
	}
	be.InTx = func(w int, fn func(ctx context.Context, tx faultgen.GenTx) (faultgen.Result, error), o faultgen.TxOpts) dbop.Op[faultgen.Result] {
		return gormdb.InTx(dbs[w], func(ctx context.Context, tx *gorm.DB) (faultgen.Result, error) {
			return fn(ctx, gormGenTx{tx, sp})
		}, txOpts(o)...)
	}
	be.Do = func(w int, fn func(ctx context.Context, tx faultgen.GenTx) error, o faultgen.TxOpts) dbop.Op[struct{}] {
		return gormdb.Do(dbs[w], func(ctx context.Context, tx *gorm.DB) error {
			return fn(ctx, gormGenTx{tx, sp})
		}, txOpts(o)...)
	}
}

// setupGORMPostgres prepares a PostgreSQL round on GORM's postgres
// dialector (pgx's database/sql driver), one pool of 3 connections per
// worker as faultgen.SetupPostgresSQL has.
func setupGORMPostgres(t *testing.T, cfg faultgen.RunConfig, st *faultgen.Stats) (*faultgen.Backend, faultgen.InjectFunc, map[string]int, func() (map[string]faultgen.LedgerRow, []int64)) {
	r := faultgen.NewPGRound(t, cfg)
	dbs := make([]*gorm.DB, faultgen.NumWorkers)
	var closers []func()
	for w := range dbs {
		sqlDB := stdlib.OpenDB(*r.ConnConfig(t, w))
		sqlDB.SetMaxOpenConns(3)
		t.Cleanup(func() { sqlDB.Close() })
		closers = append(closers, func() { sqlDB.Close() })
		dbs[w] = openGORM(t, postgres.New(postgres.Config{Conn: sqlDB}), nil)
	}
	be := r.Backend("PostgreSQL via gormdb (postgres dialector)", true)
	gormBackend(be, dbs)
	return r.Done(t, st, be, closers)
}

// setupGORMMariaDB prepares a MariaDB round on GORM's mysql dialector,
// with HotSpot's lock table (gormdb.CreateHotSpotLocks) and one pool of 3
// connections per worker, as faultgen.SetupMariaDB has. gormdb has no
// fixed per-attempt limits on MariaDB (LockTimeout and StatementTimeout
// are PostgreSQL's): its transactions are drawn without, and derive them
// from a WithTimeout's deadline.
func setupGORMMariaDB(t *testing.T, cfg faultgen.RunConfig, st *faultgen.Stats) (*faultgen.Backend, faultgen.InjectFunc, map[string]int, func() (map[string]faultgen.LedgerRow, []int64)) {
	r := faultgen.NewMyRound(t, cfg)
	dbs := make([]*gorm.DB, faultgen.NumWorkers)
	var closers []func()
	for w := range dbs {
		db := openMySQL(t, r.Config(w), nil)
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		sqlDB.SetMaxOpenConns(3)
		closers = append(closers, func() { sqlDB.Close() })
		dbs[w] = db
	}
	if err := gormdb.CreateHotSpotLocks(t.Context(), dbs[0]); err != nil {
		t.Fatal(err)
	}
	be := r.Backend("MariaDB via gormdb (mysql dialector)")
	be.Limits = []string{""}
	gormBackend(be, dbs, mariadb)
	return r.Done(t, st, be, closers)
}

// verifyNoLeaks fails t if a goroutine started during the test outlives
// it: every pool closed, proxy stopped, injector and worker joined. It is
// registered first, so that it runs after every other cleanup.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// TestFaultGeneratedGORMPostgres is faulttest's
// TestFaultGeneratedPostgresSQL through gormdb on GORM's postgres
// dialector.
func TestFaultGeneratedGORMPostgres(t *testing.T) {
	verifyNoLeaks(t)
	faultgen.RunGenerated(t, setupGORMPostgres)
}

// TestFaultGeneratedGORMMariaDB is faulttest's TestFaultGeneratedMariaDB
// through gormdb on GORM's mysql dialector. go-sql-driver logs every
// connection the injector breaks; the workers see those errors anyway, so
// its log is silenced for the test.
func TestFaultGeneratedGORMMariaDB(t *testing.T) {
	verifyNoLeaks(t)
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	t.Cleanup(func() { _ = mysql.SetLogger(log.New(os.Stderr, "[mysql] ", log.Ldate|log.Ltime)) })
	faultgen.RunGenerated(t, setupGORMMariaDB)
}
