package gormdb

import (
	"database/sql"
	"errors"
	"slices"

	"github.com/dbop-go/dbop"
	"gorm.io/gorm"
)

// classifier returns what InTx, Do and InSavepoint classify errors with:
// the ClassifyBy classifiers in order, then GORM's own errors, then the
// dialect's classifier.
func (c *config) classifier(b backend) dbop.Classifier {
	cs := append(slices.Clone(c.classifiers), gormErrors, b.classify)
	all := cs[0]
	for _, next := range cs[1:] {
		all = all.Or(next)
	}
	return all
}

// gormErrors classifies GORM's sentinel errors, and database/sql's
// sql.ErrTxDone, as NotRetryable: each says the program asked for something
// that trying again cannot change. A record not found, in particular, is a
// result, not a failure of the database. With TranslateError, GORM replaces
// some driver errors by these sentinels (docs/backends.md §9.5), all of
// them codes no rule retries: the verdict is the same either way.
// sql.ErrTxDone is met when the transaction was already ended, by fn
// calling Commit or Rollback itself (§10.3): a statement fn runs after
// that is refused, and trying again cannot change it. InTx's own COMMIT
// meeting it is judged Ambiguous instead (commitOutcome, txn.judge).
func gormErrors(err error) dbop.Verdict {
	if err == nil {
		return dbop.Unclassified
	}
	for _, target := range [...]error{
		gorm.ErrRecordNotFound,
		gorm.ErrDuplicatedKey,
		gorm.ErrForeignKeyViolated,
		gorm.ErrCheckConstraintViolated,
		gorm.ErrInvalidTransaction,
		gorm.ErrNotImplemented,
		gorm.ErrMissingWhereClause,
		gorm.ErrUnsupportedRelation,
		gorm.ErrPrimaryKeyRequired,
		gorm.ErrModelValueRequired,
		gorm.ErrModelAccessibleFieldsRequired,
		gorm.ErrSubQueryRequired,
		gorm.ErrInvalidData,
		gorm.ErrUnsupportedDriver,
		gorm.ErrRegistered,
		gorm.ErrInvalidField,
		gorm.ErrEmptySlice,
		gorm.ErrDryRunModeUnsupported,
		gorm.ErrInvalidDB,
		gorm.ErrInvalidValue,
		gorm.ErrInvalidValueOfLength,
		gorm.ErrPreloadNotAllowed,
		sql.ErrTxDone,
	} {
		if errors.Is(err, target) {
			return dbop.NotRetryable
		}
	}
	return dbop.Unclassified
}
