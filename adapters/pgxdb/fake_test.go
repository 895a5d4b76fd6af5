package pgxdb_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// fakeDB is a Beginner for tests that need no server: it records the
// statements its transactions run and fails the ones it was told to.
type fakeDB struct {
	mu   sync.Mutex
	log  []string
	fail map[string][]error
}

// FailNext makes the next len(errs) runs of stmt fail with errs in turn (a
// nil error lets that run succeed).
func (db *fakeDB) FailNext(stmt string, errs ...error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.fail == nil {
		db.fail = map[string][]error{}
	}
	db.fail[stmt] = append(db.fail[stmt], errs...)
}

func (db *fakeDB) run(stmt string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.log = append(db.log, stmt)
	errs := db.fail[stmt]
	if len(errs) == 0 {
		return nil
	}
	db.fail[stmt] = errs[1:]
	return errs[0]
}

// Log returns the statements run so far.
func (db *fakeDB) Log() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return append([]string(nil), db.log...)
}

func (db *fakeDB) BeginTx(_ context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	stmt := "begin"
	for _, o := range []string{string(opts.IsoLevel), string(opts.AccessMode), string(opts.DeferrableMode)} {
		if o != "" {
			stmt += " " + o
		}
	}
	if opts.BeginQuery != "" {
		stmt = opts.BeginQuery
	}
	if err := db.run(stmt); err != nil {
		return nil, err
	}
	return &fakeTx{db: db}, nil
}

// fakeTx is a pgx.Tx that implements what pgxdb calls; anything else
// panics through the nil embedded interface.
type fakeTx struct {
	pgx.Tx
	db *fakeDB
}

func (tx *fakeTx) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if len(args) > 0 {
		sql += fmt.Sprint(args)
	}
	return pgconn.CommandTag{}, tx.db.run(sql)
}

func (tx *fakeTx) Commit(context.Context) error   { return tx.db.run("commit") }
func (tx *fakeTx) Rollback(context.Context) error { return tx.db.run("rollback") }
func (tx *fakeTx) Conn() *pgx.Conn                { return nil }

// safeErr is an error with pgconn's SafeToRetry capability.
type safeErr struct{ safe bool }

func (e safeErr) Error() string {
	return fmt.Sprintf("fake transport error (safe to retry: %t)", e.safe)
}
func (e safeErr) SafeToRetry() bool { return e.safe }
