//go:build cgo

package mattnsqlite_test

import (
	"context"
	"fmt"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/classifiers/mattnsqlite"
	"github.com/mattn/go-sqlite3"
)

// A write that meets BUSY_SNAPSHOT twice: mattnsqlite.Classifier recognises
// mattn's error, so the retry runs the unit of work again.
func Example() {
	busySnapshot := sqlite3.Error{Code: sqlite3.ErrBusy, ExtendedCode: sqlite3.ErrBusySnapshot}
	attempts := 0
	write := dbop.Op[int](func(context.Context) (int, error) {
		attempts++
		if attempts < 3 {
			return 0, busySnapshot
		}
		return 1, nil
	}).With(
		dbop.WithRetry(dbop.Constant(0)),
		dbop.ClassifyBy(mattnsqlite.Classifier, classifiers.Default),
	)
	n, err := write.Run(context.Background())
	fmt.Println(n, err, attempts)
	// Output: 1 <nil> 3
}
