package pgxdb

// JudgeCommit exposes commitOutcome, the judgement of a COMMIT error, to
// the tests of package pgxdb_test.
var JudgeCommit = commitOutcome

// SharedQueued returns how many attempts of ShareCommits operations on db
// wait for their turn: a barrier for the tests that make several attempts
// meet in one shared transaction.
func SharedQueued(db Beginner) int {
	n := 0
	shareGroups.Range(func(k, v any) bool {
		if k.(shareGroupKey).db == db {
			g := v.(*shareGroup)
			g.mu.Lock()
			n += len(g.queue)
			g.mu.Unlock()
		}
		return true
	})
	return n
}
