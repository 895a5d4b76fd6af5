package demo

import (
	"fmt"
	"io"
	"os"
)

// DSNVar is the environment variable an example reads its connection
// string from, and what [DSNVar.Message] tells the user to set it to.
type DSNVar struct {
	Name    string // the variable, such as "DBOP_POSTGRES_DSN"
	What    string // what it holds, such as "a PostgreSQL connection string"
	Example string // a value to copy, such as "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Message says what to set when the variable is empty, on two lines: the
// second is an export command with v.Example.
func (v DSNVar) Message() string {
	return "set " + v.Name + " to " + v.What + ", e.g.\n" +
		"\texport " + v.Name + "='" + v.Example + "'"
}

// MustGet returns the variable's value. If it is empty, MustGet prints
// [DSNVar.Message] on stderr, after program (such as "pgx example"), and
// exits with status 2.
func (v DSNVar) MustGet(program string) string {
	dsn, ok := v.get(os.Stderr, program)
	if !ok {
		os.Exit(2)
	}
	return dsn
}

// get returns the variable's value and true, or, if it is empty, tells w
// what to set, after program, and returns false.
func (v DSNVar) get(w io.Writer, program string) (string, bool) {
	dsn := os.Getenv(v.Name)
	if dsn == "" {
		fmt.Fprintln(w, program+":", v.Message())
		return "", false
	}
	return dsn, true
}
