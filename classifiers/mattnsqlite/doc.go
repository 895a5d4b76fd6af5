// Package mattnsqlite classifies the errors of github.com/mattn/go-sqlite3,
// the cgo SQLite driver, for dbop. It is a module of its own
// (github.com/dbop-go/dbop/classifiers/mattnsqlite), so that only programs
// that use mattn's driver require it; the pure-Go driver modernc.org/sqlite
// is classified by github.com/dbop-go/dbop/classifiers.SQLite, which
// classifiers.Default includes.
//
// Ask it before or after the other classifiers:
//
//	dbop.ClassifyBy(mattnsqlite.Classifier, classifiers.Default)
//
// # Without cgo
//
// mattn's error type exists only when cgo is enabled (CGO_ENABLED=1 and a C
// compiler), so [Classifier] does too. Built without cgo, mattn compiles to a
// stub whose driver fails at Open, and this package holds no names: a
// program that calls Classify fails to compile rather than run with a
// driver that cannot open a database. Its tests then report one skip that
// says so.
package mattnsqlite
