package sqldialect

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dbop-go/dbop"
	"github.com/dbop-go/dbop/internal/txmark"
)

// Judge returns the error of a transaction's function that returned err
// on family f, judged by whether it went on after the transaction had
// ended beneath it: [SwallowedSQLite] on SQLite, which keeps a transaction
// open after most errors and is asked with rollback (the ROLLBACK the
// transaction's owner would send next), [Swallowed] elsewhere. wentOn says
// whether statements were seen going out after the error that ended the
// transaction (false where the caller cannot see them).
func Judge(ctx context.Context, f Family, caller string, err error, wentOn bool, rollback func() error) error {
	if f == SQLite {
		return SwallowedSQLite(ctx, caller, err, wentOn, rollback)
	}
	return Swallowed(ctx, f, caller, err, wentOn)
}

// Swallowed returns the error of a transaction's function that returned
// err, nil or not, on family: when a scope or a retry inside the
// transaction saw the server roll it back (txmark.State), the family is
// MySQL's or MariaDB's, and the function went on instead of returning that
// error — it returned nil, or another error that came later (a lock wait
// timeout of a statement it ran afterwards, say), or it ran statements
// after the rollback and then returned its error (wentOn) — an Ambiguous
// error. Those servers end the transaction at the rollback (a deadlock,
// 1213) and run the statements that follow on their own, each committed at
// once (docs/backends.md §3.2): what the function did after swallowing the
// error may have been applied, and running the transaction again could
// apply it twice.
//
// wentOn reports that the caller saw a statement that may write sent in
// the transaction after the rollback was recorded; a caller that cannot
// see the function's statements passes false, and a function that returned
// the rollback's error is then taken at its word: nothing ran after it.
// That is the one way of going on this cannot see, and why the adapters
// document that the function must return such an error at once.
//
// On PostgreSQL the transaction's owner rolls back what is left of the
// transaction and may run it again: PostgreSQL refuses statements in an
// aborted transaction. SQLite keeps a transaction open after most errors
// but not all: see [SwallowedSQLite], which asks it. Swallowed returns err
// as it is on every family but MySQL and MariaDB.
func Swallowed(ctx context.Context, family Family, caller string, err error, wentOn bool) error {
	if family != MySQL && family != MariaDB {
		return err
	}
	s := txmark.StateOf(ctx)
	if s == nil || s.Doomed() == nil {
		return err
	}
	doom := s.Doomed()
	switch {
	case err == nil:
		return dbop.Classify(fmt.Errorf("%s: the function returned nil after the server had rolled the transaction back (%w); "+
			"on %v the statements it ran after that were committed on their own, so what was applied is unknown: return the error instead of going on",
			caller, doom, family), dbop.Ambiguous)
	case errors.Is(err, doom) && wentOn:
		return dbop.Classify(fmt.Errorf("%s: the function ran statements after the server had rolled the transaction back, then returned the error (%w); "+
			"on %v those statements were committed on their own, so what was applied is unknown: return the error at once instead of going on",
			caller, err, family), dbop.Ambiguous)
	case errors.Is(err, doom):
		return err
	}
	return dbop.Classify(fmt.Errorf("%s: the function went on after the server had rolled the transaction back (%w), and then failed (%w); "+
		"on %v the statements it ran after the rollback were committed on their own, so what was applied is unknown: return the error instead of going on",
		caller, doom, err, family), dbop.Ambiguous)
}

// SwallowedSQLite is [Swallowed] for SQLite, which keeps a transaction
// open after most errors (SQLITE_BUSY on a statement, a constraint) but
// ends it after some: an interrupted INSERT, UPDATE or DELETE (a deadline,
// on both drivers) rolls back the entire transaction, and SQLITE_FULL,
// IOERR, NOMEM and BUSY may (docs/backends.md §5.5, §5.6). The statements
// that follow then run on their own, each committed at once, as on MySQL.
// Only the transaction can tell whether it ended, so when the function
// went on after an error — a scope or a retry inside the transaction
// recorded the error that doomed it (txmark.State) and the function
// returned nil or another error; or the function returned an error after
// running more statements past an error that may have ended the
// transaction, or past the doom (wentOn, which the caller sees); or the
// function returned nil after ctx ended — SwallowedSQLite rolls the
// transaction back with rollback (the owner rolls it back next anyway, so
// this costs nothing). If SQLite answers that no transaction is active
// ([NoTransaction]), what the function ran after the error was committed,
// and running the transaction again could apply it twice: the error
// returned is Ambiguous. Otherwise the ROLLBACK undid everything, and err
// is returned as it is; rollback must make the owner's own rollback report
// the same outcome without running ROLLBACK again. A function that
// returned an error without going on is taken at its word, and nothing is
// rolled back here; a caller that cannot see the function's statements
// passes wentOn false, and then a function that ran statements after the
// error and returned it is taken at its word too.
func SwallowedSQLite(ctx context.Context, caller string, err error, wentOn bool, rollback func() error) error {
	var doom error
	if s := txmark.StateOf(ctx); s != nil {
		doom = s.Doomed()
	}
	var after string // what the function went on after
	switch {
	case doom != nil && err == nil:
		after = fmt.Sprintf("the function returned nil after an error had doomed the transaction (%v)", doom)
	case doom != nil && !errors.Is(err, doom):
		after = fmt.Sprintf("the function went on after an error had doomed the transaction (%v), and then failed (%v)", doom, err)
	case doom != nil && wentOn:
		after = fmt.Sprintf("the function ran statements after an error had doomed the transaction, then returned that error (%v)", err)
	case doom == nil && err != nil && wentOn:
		after = fmt.Sprintf("the function ran statements after an error that may have ended the transaction, then returned an error (%v)", err)
	case doom == nil && err == nil && ctx.Err() != nil:
		after = fmt.Sprintf("the function returned nil after its context had ended (%v)", context.Cause(ctx))
	default:
		return err
	}
	rerr := rollback()
	if !NoTransaction(rerr) {
		return err
	}
	return dbop.Classify(&TxEndedError{
		Err: rerr,
		Msg: caller + ": " + after + ", but SQLite had already ended the transaction " +
			"(an interrupted write rolls it back, and SQLITE_FULL, IOERR, NOMEM or BUSY may): the statements the function ran after that " +
			"were committed on their own, so what was applied is unknown: return the error at once instead of going on",
		Doom:  doom,
		FnErr: err,
	}, dbop.Ambiguous)
}

// TxEnded is the error of caller's COMMIT that found no transaction on
// SQLite (err, which [NoTransaction] recognises): the function returned nil
// after an error that made SQLite end the transaction (docs/backends.md
// §5.5, §5.6), or ended it with SQL of its own, and what it ran after that
// was committed statement by statement. The adapters' COMMIT rules judge a
// *TxEndedError Ambiguous.
func TxEnded(caller string, err error) error {
	return &TxEndedError{
		Msg: caller + ": COMMIT: the function returned nil, but SQLite had already ended the transaction " +
			"(an interrupted write rolls it back, and SQLITE_FULL, IOERR, NOMEM or BUSY may): the statements the function ran after " +
			"the error that ended it were committed on their own, so what was applied is unknown: return that error instead of going on",
		Err: err,
	}
}

// TxEndedError is the error of a transaction SQLite had ended on its own
// (docs/backends.md §5.5, §5.6) while the function went on: the
// statements it ran after that were committed one by one. It unwraps to
// the error that doomed the transaction, the function's own error and the
// error of the ROLLBACK or COMMIT that found no transaction, those present,
// in that order.
type TxEndedError struct {
	Msg   string // what happened, for Error
	Err   error  // the ROLLBACK's or COMMIT's error: no transaction is active
	Doom  error  // the error that doomed the transaction, if one was recorded
	FnErr error  // the function's error, if it returned one
}

func (e *TxEndedError) Error() string { return e.Msg + " (" + e.Err.Error() + ")" }

// Unwrap returns the errors the transaction ended with.
func (e *TxEndedError) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.Doom, e.FnErr, e.Err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// NoTransaction reports whether err, the error of a ROLLBACK or COMMIT on
// SQLite, says that no transaction was active: SQLite had ended it before
// ("cannot rollback - no transaction is active", "cannot commit - no
// transaction is active"; modernc.org/sqlite prefixes "SQL logic error: ",
// mattn/go-sqlite3 returns the message alone).
func NoTransaction(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no transaction is active")
}
