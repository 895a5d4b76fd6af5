package classifiers_test

import (
	"fmt"

	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/dboptest"
)

// Default looks through wrapped errors to the driver's error and says what
// it did to the transaction.
func ExampleDefault() {
	// PostgreSQL's serialization failure, wrapped by application code.
	err := fmt.Errorf("transfer 42: %w",
		dboptest.PgError("40001", "could not serialize access due to concurrent update"))
	fmt.Println(classifiers.Default(err))

	// PostgreSQL's lock_timeout ends only the statement: a savepoint
	// rollback undoes it.
	err = dboptest.PgError("55P03", "canceling statement due to lock timeout")
	fmt.Println(classifiers.Default(err))

	// An error no classifier knows.
	fmt.Println(classifiers.Default(fmt.Errorf("parse config: missing key")))
	// Output:
	// retry-transaction
	// retry-statement
	// unclassified
}
