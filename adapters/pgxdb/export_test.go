package pgxdb

// JudgeCommit exposes commitOutcome, the judgement of a COMMIT error, to
// the tests of package pgxdb_test.
var JudgeCommit = commitOutcome
