package mysqldb

import (
	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/adapters/sqldb"
	"github.com/dbop-go/dbop/classifiers"
	"github.com/dbop-go/dbop/internal/sqldialect"
)

// MySQL is MySQL through go-sql-driver/mysql, a [sqldb.Dialect]. Its
// classifier is [Classifier], then the transport and context rules of
// github.com/dbop-go/dbop/classifiers (Network, Context); its COMMIT rules
// are tabled in the package documentation. Per-attempt timeouts set
// innodb_lock_wait_timeout and max_execution_time, which limits read-only
// SELECT statements only (docs/backends.md §3.4, §3.6).
//
// Never assign to MySQL itself: copy it to change a rule.
var MySQL = sqldb.Dialect{
	Name:          "mysql",
	Family:        sqldialect.MySQL,
	Classify:      classify,
	CommitOutcome: commitOutcome,
}

// MariaDB is MariaDB through go-sql-driver/mysql, a [sqldb.Dialect]. It differs
// from [MySQL] in its statement time limit: max_statement_time, any
// statement, error 1969, instead of max_execution_time, SELECT only, error
// 3024, which MariaDB does not have (docs/backends.md §3.7, §3.8).
//
// Never assign to MariaDB itself: copy it to change a rule.
var MariaDB = sqldb.Dialect{
	Name:          "mariadb",
	Family:        sqldialect.MariaDB,
	Classify:      classify,
	CommitOutcome: commitOutcome,
}

// classify is the classifier of the MySQL and MariaDB dialects: Classifier,
// then the transport and context rules.
func classify(err error) dbop.Verdict {
	if v := Classifier(err); v != dbop.Unclassified || err == nil {
		return v
	}
	if v := classifiers.Network(err); v != dbop.Unclassified {
		return v
	}
	return classifiers.Context(err)
}
