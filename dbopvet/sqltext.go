package dbopvet

import (
	"go/ast"
	"go/constant"
	"go/types"
	"strings"
	"unicode"
)

// sqlWords returns the first two words of a statement, upper-cased, after
// leading white space and comments (-- to the end of the line, and /* */,
// nested as PostgreSQL nests them).
func sqlWords(s string) (first, second string) {
	s = skipSpaceAndComments(s)
	first, s = word(s)
	second, _ = word(skipSpaceAndComments(s))
	return first, second
}

func word(s string) (w, rest string) {
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && r != '_' })
	if i < 0 {
		i = len(s)
	}
	return strings.ToUpper(s[:i]), s[i:]
}

// blockComment returns the length of the block comment s starts with
// (/* … */, nested as PostgreSQL nests them), and whether it is closed;
// unclosed, it runs to the end of s.
func blockComment(s string) (n int, closed bool) {
	depth, i := 0, 0
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], "/*"):
			depth, i = depth+1, i+2
		case strings.HasPrefix(s[i:], "*/"):
			depth, i = depth-1, i+2
		default:
			i++
		}
		if depth == 0 {
			return i, true
		}
	}
	return i, false
}

func skipSpaceAndComments(s string) string {
	for {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i, closed := blockComment(s)
			if !closed {
				return ""
			}
			s = s[i:]
		default:
			return s
		}
	}
}

// writeVerb returns INSERT, UPDATE or DELETE when the statement s begins
// with it, and "" otherwise.
func writeVerb(s string) string {
	switch first, _ := sqlWords(s); first {
	case "INSERT", "UPDATE", "DELETE":
		return first
	}
	return ""
}

// endsTxText reports whether the statement s ends the transaction it runs
// in: COMMIT, END, ROLLBACK (not ROLLBACK TO a savepoint) or ABORT.
func endsTxText(s string) (verb string, ok bool) {
	first, second := sqlWords(s)
	switch first {
	case "COMMIT", "END":
		return "COMMIT", true
	case "ROLLBACK", "ABORT":
		if second == "TO" {
			return "", false
		}
		if second == "WORK" || second == "TRANSACTION" {
			rest := skipSpaceAndComments(s)
			_, rest = word(rest)
			_, rest = word(skipSpaceAndComments(rest))
			if third, _ := word(skipSpaceAndComments(rest)); third == "TO" {
				return "", false
			}
		}
		return "ROLLBACK", true
	}
	return "", false
}

// statementText returns the constant text of the statement a call runs,
// if it has one: the first string parameter of the method (pgx's sql,
// database/sql's query, GORM's Exec and Raw), or, for a GORM finisher,
// the text of a Raw earlier in its chain.
func statementText(info *types.Info, call *ast.CallExpr) (string, bool) {
	if s, ok := firstStringArg(info, call); ok {
		return s, true
	}
	fn := callee(info, call)
	if fn == nil || !isNamed(recvNamed(fn), gormPath, "DB") {
		return "", false
	}
	for e := ast.Unparen(call.Fun); ; {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return "", false
		}
		inner, ok := ast.Unparen(sel.X).(*ast.CallExpr)
		if !ok {
			return "", false
		}
		if f := callee(info, inner); f != nil && f.Name() == "Raw" && isNamed(recvNamed(f), gormPath, "DB") {
			return firstStringArg(info, inner)
		}
		e = ast.Unparen(inner.Fun)
	}
}

// firstStringArg returns the constant value of the argument given for the
// first string parameter of the function a call calls.
func firstStringArg(info *types.Info, call *ast.CallExpr) (string, bool) {
	sig, _ := types.Unalias(info.TypeOf(call.Fun)).(*types.Signature)
	if sig == nil {
		return "", false
	}
	for i := 0; i < sig.Params().Len() && i < len(call.Args); i++ {
		if sig.Variadic() && i == sig.Params().Len()-1 {
			break
		}
		b, ok := sig.Params().At(i).Type().Underlying().(*types.Basic)
		if !ok || b.Kind() != types.String {
			continue
		}
		tv := info.Types[call.Args[i]]
		if tv.Value == nil || tv.Value.Kind() != constant.String {
			return "", false
		}
		return constant.StringVal(tv.Value), true
	}
	return "", false
}
