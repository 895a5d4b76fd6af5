package dbopvet

import (
	"fmt"
	"go/ast"
	"go/types"
	"strings"
	"unicode"
)

// scopeShares reports whether the call of InTx or Do fn, whose function
// is argument fnArg, is one of pgxdb given pgxdb.ShareCommits() among its
// options: directly, or through a variable assigned once. Options passed
// as a slice (opts...) are not looked into.
func (c *checker) scopeShares(fn *types.Func, call *ast.CallExpr, fnArg int) bool {
	if funcPath(fn) != pgxdbPath || call.Ellipsis.IsValid() {
		return false
	}
	for _, opt := range call.Args[min(fnArg+1, len(call.Args)):] {
		if c.txOption(opt, 0) == "ShareCommits" {
			return true
		}
	}
	return false
}

// checkSharedSettings reports check 9, shared-settings: inside a function
// run in a transaction pgxdb shares with other operations' attempts, a
// statement on that transaction that changes its settings (SET LOCAL,
// set_config(…, true), SET TRANSACTION, SET CONSTRAINTS), which would hold
// for the attempts after it.
func (c *checker) checkSharedSettings(tf *txFunc, call *ast.CallExpr) {
	if !tf.shares {
		return
	}
	info := c.pass.TypesInfo
	fn := callee(info, call)
	sel, isSel := ast.Unparen(call.Fun).(*ast.SelectorExpr)
	if fn == nil || !isSel || recvNamed(fn) == nil || !isStatement(info.TypeOf(sel.X), fn.Name()) {
		return
	}
	r, ok := c.ix.rootOf(sel.X)
	if !ok || !c.isTxRoot(r, func(r root) bool { return r.v == tf.tx }) {
		return
	}
	text, ok := statementText(info, call)
	if !ok {
		return
	}
	s, ok := findSettingChange(text)
	if !ok {
		return
	}
	scope := tf.sharedBy
	var advice string
	switch {
	case s.name == "lock_timeout":
		advice = "set the limit with pgxdb.LockTimeout(d) among the operation's options instead, which holds for every attempt that shares the transaction, or "
	case s.name == "statement_timeout":
		advice = "set the limit with pgxdb.StatementTimeout(d) among the operation's options instead, which holds for every attempt that shares the transaction, or "
	case s.isolation:
		advice = "set the level with pgxdb.Isolation(level) among the operation's options instead, or "
	}
	c.report(call.Lparen, catSharedSettings, fmt.Sprintf("%s runs %s in the transaction %s shares with other operations' attempts "+
		"(pgxdb.ShareCommits()): unless this attempt is rolled back, it stays in force for the attempts that run "+
		"after it in the same transaction; %sdrop pgxdb.ShareCommits() from this operation",
		types.ExprString(call.Fun), s.what, scope, advice))
}

// A settingChange is a statement that changes a setting of the
// transaction it runs in, for the rest of it.
type settingChange struct {
	what      string // as a message names it: SET LOCAL lock_timeout, set_config('app.user', …, true)
	name      string // the setting, lower-cased, when known
	isolation bool   // SET TRANSACTION ISOLATION LEVEL
}

// findSettingChange returns the first statement of s (several, separated by
// semicolons) that changes a setting of the transaction for the rest of
// it: SET LOCAL, SET TRANSACTION, SET CONSTRAINTS, or a call of
// set_config whose third argument is true. SET without LOCAL and SET
// SESSION CHARACTERISTICS, which change the session, are not reported;
// nor is a set_config whose third argument is not a constant.
func findSettingChange(s string) (settingChange, bool) {
	masked := maskSQL(s)
	start := 0
	for i := 0; i <= len(masked); i++ {
		if i < len(masked) && masked[i] != ';' {
			continue
		}
		if ch, ok := statementSettingChange(s[start:i], masked[start:i]); ok {
			return ch, true
		}
		start = i + 1
	}
	return settingChange{}, false
}

// statementSettingChange looks at one statement, s, whose comments and
// quoted text masked has blanked.
func statementSettingChange(s, masked string) (settingChange, bool) {
	first, second := sqlWords(masked)
	if first == "SET" {
		switch second {
		case "LOCAL":
			rest := skipSpaceAndComments(masked)
			_, rest = word(rest)
			_, rest = word(skipSpaceAndComments(rest))
			at := len(masked) - len(skipSpaceAndComments(rest))
			name := settingName(s[at:], masked[at:])
			return settingChange{what: strings.TrimSpace("SET LOCAL " + name), name: name}, true
		case "TRANSACTION":
			iso := strings.Contains(strings.ToUpper(masked), "ISOLATION")
			return settingChange{what: "SET TRANSACTION", isolation: iso}, true
		case "CONSTRAINTS":
			return settingChange{what: "SET CONSTRAINTS"}, true
		}
	}
	lower := strings.ToLower(masked)
	for from := 0; ; {
		i := strings.Index(lower[from:], "set_config")
		if i < 0 {
			return settingChange{}, false
		}
		i += from
		from = i + len("set_config")
		if i > 0 && isIdentChar(rune(lower[i-1])) {
			continue
		}
		open := from + len(lower[from:]) - len(strings.TrimLeftFunc(lower[from:], unicode.IsSpace))
		if open >= len(lower) || lower[open] != '(' {
			continue
		}
		args := callArgs(s, masked, open)
		if len(args) != 3 || !isTrue(args[2]) {
			continue
		}
		name := ""
		if a := args[0]; len(a) >= 2 && a[0] == '\'' && a[len(a)-1] == '\'' {
			name = strings.ToLower(strings.ReplaceAll(a[1:len(a)-1], "''", "'"))
		}
		what := "set_config(" + args[0] + ", …, true)"
		return settingChange{what: what, name: name}, true
	}
}

// settingName returns the name of the setting at the start of s (masked,
// its masked text), lower-cased: an identifier, dotted or quoted, or one
// of the two-word names.
func settingName(s, masked string) string {
	upper := strings.ToUpper(masked)
	for _, two := range []string{"TIME ZONE", "SESSION AUTHORIZATION"} {
		if strings.HasPrefix(upper, two) {
			return strings.ToLower(two)
		}
	}
	end := 0
	for end < len(masked) && (isIdentChar(rune(masked[end])) || masked[end] == '.' || masked[end] == '"') {
		if masked[end] == '"' {
			close := strings.IndexByte(masked[end+1:], '"')
			if close < 0 {
				break
			}
			end += close + 2
			continue
		}
		end++
	}
	return strings.ToLower(strings.ReplaceAll(s[:end], `"`, ""))
}

// callArgs returns the arguments, trimmed, of the call whose opening
// parenthesis is at open in s (masked: its masked text), split at the
// commas outside parentheses; nil when the call is not closed.
func callArgs(s, masked string, open int) []string {
	var args []string
	depth, start := 0, open+1
	for i := open; i < len(masked); i++ {
		switch masked[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return append(args, strings.TrimSpace(s[start:i]))
			}
		case ',':
			if depth == 1 {
				args = append(args, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return nil
}

// isTrue reports whether the SQL expression e is the constant true: true,
// or a string PostgreSQL reads as true ('t', 'on', …), cast to boolean or
// not.
func isTrue(e string) bool {
	e = strings.ToLower(strings.TrimSpace(e))
	for _, cast := range []string{"::boolean", "::bool"} {
		e = strings.TrimSpace(strings.TrimSuffix(e, cast))
	}
	if strings.HasPrefix(e, "'") && strings.HasSuffix(e, "'") && len(e) >= 2 {
		e = strings.TrimSpace(e[1 : len(e)-1])
	}
	switch e {
	case "true", "t", "tr", "tru", "yes", "y", "ye", "on", "1":
		return true
	}
	return false
}

func isIdentChar(r rune) bool {
	return r == '_' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

// maskSQL returns s with the text of its comments and of its quoted
// strings and identifiers (the quotes kept) replaced by spaces, byte for
// byte, so that what is left is the statement's own syntax at the same
// offsets: '…' (with ” inside, and backslash escapes in E'…'), "…",
// $tag$…$tag$, -- to the end of the line, and /* */, nested.
func maskSQL(s string) string {
	b := []byte(s)
	blank := func(from, to int) {
		for k := from; k < to && k < len(b); k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
	}
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "--"):
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				end = len(s) - i
			}
			blank(i, i+end)
			i += end
		case strings.HasPrefix(s[i:], "/*"):
			n, _ := blockComment(s[i:])
			blank(i, i+n)
			i += n
		case s[i] == '\'':
			escapes := i > 0 && (s[i-1] == 'e' || s[i-1] == 'E') && (i == 1 || !isIdentChar(rune(s[i-2])))
			j := i + 1
			for j < len(s) {
				if escapes && s[j] == '\\' {
					j += 2
					continue
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			blank(i+1, j)
			i = j + 1
		case s[i] == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				j++
			}
			blank(i+1, j)
			i = j + 1
		case s[i] == '$' && (i == 0 || !isIdentChar(rune(s[i-1]))):
			tagEnd := i + 1
			for tagEnd < len(s) && (s[tagEnd] == '_' || unicode.IsLetter(rune(s[tagEnd])) || (tagEnd > i+1 && unicode.IsDigit(rune(s[tagEnd])))) {
				tagEnd++
			}
			if tagEnd >= len(s) || s[tagEnd] != '$' {
				i = tagEnd // a parameter ($1), not a quote
				continue
			}
			tag := s[i : tagEnd+1]
			end := strings.Index(s[tagEnd+1:], tag)
			if end < 0 {
				blank(tagEnd+1, len(s))
				i = len(s)
				continue
			}
			blank(tagEnd+1, tagEnd+1+end)
			i = tagEnd + 1 + end + len(tag)
		default:
			i++
		}
	}
	return string(b)
}
