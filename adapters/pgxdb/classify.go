package pgxdb

import (
	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
)

// Classify is the classifier [InTx] and [InSavepoint] use unless told
// otherwise: [classifiers.Default], which asks [classifiers.CockroachDB] (and
// so [classifiers.Postgres]) first, then the transport and context rules
// ([classifiers.Network], [classifiers.Context]) that a broken pgx
// connection needs. [WithClassifier] puts another classifier in front of it.
//
// Classify is safe for concurrent use.
func Classify(err error) dbop.Verdict { return classifiers.Default(err) }
