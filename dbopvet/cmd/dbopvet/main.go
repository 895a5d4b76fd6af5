// Command dbopvet reports transaction misuse in programs that use
// github.com/dbop-go/dbop: see the package documentation of
// github.com/dbop-go/dbop/dbopvet for the checks.
//
// Run it on its own, with the package patterns of the go command:
//
//	dbopvet ./...
//
// or through go vet, which also checks the test files:
//
//	go vet -vettool=$(which dbopvet) ./...
//
// A finding that is wrong is silenced by a comment on its line, or on the
// line before, that says why:
//
//	//dbopvet:ignore the audit log lives in another database on purpose
package main

import (
	"golang.org/x/tools/go/analysis/singlechecker"

	"github.com/dbop-go/dbop/dbopvet"
)

func main() { singlechecker.Main(dbopvet.Analyzer) }
