// Package gorm is a stub of gorm.io/gorm: *DB's chain and finisher
// methods, with their shapes.
package gorm

import (
	"context"
	"database/sql"
)

type Dialector interface{ Name() string }

type Config struct{}

func (c *Config) Apply(config *Config) error   { return nil }
func (c *Config) AfterInitialize(db *DB) error { return nil }

type Option interface {
	Apply(*Config) error
	AfterInitialize(*DB) error
}

type Session struct{ NewDB bool }

type DB struct {
	Error        error
	RowsAffected int64
}

func Open(dialector Dialector, opts ...Option) (db *DB, err error) { return &DB{}, nil }

// Chain methods.
func (db *DB) WithContext(ctx context.Context) *DB                   { return db }
func (db *DB) Session(config *Session) *DB                           { return db }
func (db *DB) Debug() (tx *DB)                                       { return db }
func (db *DB) Model(value interface{}) (tx *DB)                      { return db }
func (db *DB) Table(name string, args ...interface{}) (tx *DB)       { return db }
func (db *DB) Where(query interface{}, args ...interface{}) (tx *DB) { return db }
func (db *DB) Order(value interface{}) (tx *DB)                      { return db }
func (db *DB) Limit(limit int) (tx *DB)                              { return db }
func (db *DB) Raw(sql string, values ...interface{}) (tx *DB)        { return db }

// Finisher methods.
func (db *DB) Create(value interface{}) (tx *DB)                                     { return db }
func (db *DB) Save(value interface{}) (tx *DB)                                       { return db }
func (db *DB) First(dest interface{}, conds ...interface{}) (tx *DB)                 { return db }
func (db *DB) Take(dest interface{}, conds ...interface{}) (tx *DB)                  { return db }
func (db *DB) Find(dest interface{}, conds ...interface{}) (tx *DB)                  { return db }
func (db *DB) Update(column string, value interface{}) (tx *DB)                      { return db }
func (db *DB) Updates(values interface{}) (tx *DB)                                   { return db }
func (db *DB) Delete(value interface{}, conds ...interface{}) (tx *DB)               { return db }
func (db *DB) Count(count *int64) (tx *DB)                                           { return db }
func (db *DB) Row() *sql.Row                                                         { return nil }
func (db *DB) Rows() (*sql.Rows, error)                                              { return nil, nil }
func (db *DB) Scan(dest interface{}) (tx *DB)                                        { return db }
func (db *DB) Exec(sql string, values ...interface{}) (tx *DB)                       { return db }
func (db *DB) Connection(fc func(tx *DB) error) (err error)                          { return nil }
func (db *DB) Transaction(fc func(tx *DB) error, opts ...*sql.TxOptions) (err error) { return nil }
func (db *DB) Begin(opts ...*sql.TxOptions) *DB                                      { return db }
func (db *DB) Commit() *DB                                                           { return db }
func (db *DB) Rollback() *DB                                                         { return db }
func (db *DB) SavePoint(name string) *DB                                             { return db }
func (db *DB) RollbackTo(name string) *DB                                            { return db }
func (db *DB) DB() (*sql.DB, error)                                                  { return nil, nil }
