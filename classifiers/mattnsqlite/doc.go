// Package mattnsqlite classifies the errors of github.com/mattn/go-sqlite3,
// the cgo SQLite driver, for dbop.
//
// mattn's error type exists only when cgo is enabled, so [Classify] does
// too: built with CGO_ENABLED=0 this package is empty, as the driver itself
// would not work. The pure-Go driver modernc.org/sqlite is classified by
// github.com/dbop-go/dbop/classifiers.SQLite, which classifiers.Default
// includes; this package is separate so that importing the classifiers does
// not require cgo.
//
// Combine it with the other classifiers with dbop.FirstOf:
//
//	dbop.ClassifyBy(dbop.FirstOf(mattnsqlite.Classify, classifiers.Default))
package mattnsqlite
