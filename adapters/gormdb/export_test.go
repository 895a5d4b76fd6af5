package gormdb

import (
	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/scopes"
	"gorm.io/gorm"
)

// Savepoints returns the scopes.Savepointer InSavepoint(tx, opts…) runs its
// statements with, for the tests of gormdb_test.
func Savepoints(tx *gorm.DB, opts ...SavepointOption) scopes.Savepointer {
	b := backendFor("Savepoints", tx, newSavepointConfig(opts).dialect)
	return savepointer{tx: tx, backquote: b.backquotes()}
}

// ClassifierOf returns the classifier InTx(db, …, opts…) classifies errors
// with, for the tests of gormdb_test.
func ClassifierOf(db *gorm.DB, opts ...TxOption) dbop.Classifier {
	c := newTxConfig("ClassifierOf", opts)
	return c.classifier(backendFor("ClassifierOf", db, c.dialect))
}
