package faulttest

import (
	"io"
	"log"
	"testing"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"
)

// The whole suite must leave nothing running: pools closed, proxies
// stopped, injectors and workers joined.
//
// go-sql-driver logs every connection the injector breaks ("unexpected
// EOF", "broken pipe") to stderr; the workers see those errors anyway, so
// the log is silenced for this test binary.
func TestMain(m *testing.M) {
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	goleak.VerifyTestMain(m)
}
