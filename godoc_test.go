package dbop_test

import (
	"go/ast"
	"go/build"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// maxGoDocEntries is the most entries `go doc -short` of the root package
// may list: one screen (docs/vocabulary.md).
const maxGoDocEntries = 50

// TestGoDocShortFitsOneScreen counts the entries `go doc -short
// github.com/dbop-go/dbop` lists, as cmd/doc counts them, from the package's
// own source: one per exported type; one per group of constants or
// variables, listed under its type when it has one; one per exported
// function, constructors listed under the type they return. Methods are
// not listed.
func TestGoDocShortFitsOneScreen(t *testing.T) {
	entries := goDocShort(t, ".")
	if len(entries) > maxGoDocEntries {
		t.Errorf("go doc -short lists %d entries, want at most %d:\n%s", len(entries), maxGoDocEntries, strings.Join(entries, "\n"))
	}
}

// TestGoDocShortCounter shows that goDocShort lists what go doc -short
// lists, on a package with one declaration of each kind.
func TestGoDocShortCounter(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.go": `package fixture

const A, B = 1, 2

const (
	C = 3
	D = 4
)

var V = 1

var unexported = 2

func F() {}

func f() {}

type T int

const (
	T1 T = iota
	T2
)

var TV T

func NewT() T { return 0 }

func (T) M() {}

type u int

func NewU() u { return 0 }

type (
	G1 struct{}
	G2 struct{}
)

func NewG1() *G1 { return nil }

func newG2() *G2 { return nil }
`,
		"ignored.go": "//go:build ignore\n\npackage fixture\n\nfunc Ignored() {}\n",
		"a_test.go":  "package fixture\n\nfunc Helper() {}\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"const C ...", // a group before a single declaration, as go/doc sorts them
		"const A",
		"var V",
		"func F",
		"func NewU",
		"type G1",
		"    func NewG1",
		"type G2",
		"type T",
		"    const T1 ...",
		"    var TV",
		"    func NewT",
	}
	if diff := cmp.Diff(want, goDocShort(t, dir)); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

// goDocShort returns the entries `go doc -short` lists for the package in
// dir, as the names it shows: "type Op", "    func All", "var ErrX".
func goDocShort(t *testing.T, dir string) []string {
	t.Helper()
	bp, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range bp.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	pkg, err := doc.NewFromFiles(fset, files, bp.ImportPath)
	if err != nil {
		t.Fatal(err)
	}

	// As cmd/doc, values and constructors of an exported type are listed
	// under it, not at the top level.
	underType := map[any]bool{}
	for _, typ := range pkg.Types {
		if !token.IsExported(typ.Name) {
			continue
		}
		for _, v := range append(append([]*doc.Value(nil), typ.Consts...), typ.Vars...) {
			underType[v] = true
		}
		for _, f := range typ.Funcs {
			underType[f] = true
		}
	}
	var out []string
	values := func(indent string, vs []*doc.Value) {
		for _, v := range vs {
			if !underType[v] || indent != "" {
				entry := indent + v.Decl.Tok.String() + " " + v.Names[0]
				if len(v.Decl.Specs) > 1 {
					entry += " ..."
				}
				out = append(out, entry)
			}
		}
	}
	funcs := func(indent string, fs []*doc.Func) {
		for _, f := range fs {
			if token.IsExported(f.Name) && (!underType[f] || indent != "") {
				out = append(out, indent+"func "+f.Name)
			}
		}
	}
	values("", pkg.Consts)
	values("", pkg.Vars)
	funcs("", pkg.Funcs)
	for _, typ := range pkg.Types {
		if !token.IsExported(typ.Name) {
			continue
		}
		out = append(out, "type "+typ.Name)
		values("    ", typ.Consts)
		values("    ", typ.Vars)
		funcs("    ", typ.Funcs)
	}
	return out
}
