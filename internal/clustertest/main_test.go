package clustertest

import (
	"io"
	"log"
	"testing"

	"github.com/go-sql-driver/mysql"
	"go.uber.org/goleak"
)

// The suite must leave nothing running: pools closed, workers and fault
// goroutines joined.
//
// go-sql-driver logs every connection a killed or paused node breaks
// ("unexpected EOF", "broken pipe") to stderr; the workers see those errors
// anyway, so the log is silenced for this test binary.
func TestMain(m *testing.M) {
	_ = mysql.SetLogger(log.New(io.Discard, "", 0))
	goleak.VerifyTestMain(m)
}
