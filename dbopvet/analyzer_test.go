package dbopvet_test

import (
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/dbop-go/dbop/dbopvet"
)

// Each package of testdata/src holds the true positives of one check,
// marked with // want comments, and the negatives around them, which must
// stay silent; txhelp's wrappers are learnt as facts (marked with
// // want name:"fact") and checked at their callers in usetxhelp. The
// packages under github.com/ and gorm.io/ are stubs with the shapes of the
// real APIs. The packages are loaded together, once: loading is what
// costs.
func TestAnalyzer(t *testing.T) {
	analysistest.Run(t, analysistest.TestData(), dbopvet.Analyzer,
		"outsidetx",      // 1: a statement through a handle from outside the transaction
		"endstx",         // 2: a function that ends the transaction it was handed
		"retryintx",      // 3: a retry in a transaction no scope or context protects
		"autocommit",     // 4: a write in autocommit under a retry not marked Idempotent
		"retrycommits",   // 5: a transaction after another committed, under a retry not marked Idempotent
		"thenctx",        // 6: a step of dbop.Then that runs its work with another context than the one Then handed it
		"oneshot",        // 7: a one-shot source built outside a function a retry runs again, used up inside it
		"busyconn",       // 8: InTx or Do on a connection inside a transaction begun on it by hand
		"sharedsettings", // 9: a change of the settings of a transaction pgxdb.ShareCommits shares
		"txhelp",         // wrappers of InTx, and helpers that end a transaction: facts
		"usetxhelp",      // their callers
		"ignore",         // //dbopvet:ignore
	)
}
