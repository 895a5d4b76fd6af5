package dbopvet_test

import (
	"fmt"
	"go/types"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// The stubs in testdata/src stand for the real APIs in the tests: every
// function and method they declare must have the real one's signature.
// Run inside the dbop workspace (go test work), where the real packages
// load; elsewhere the test is skipped.
func TestStubsMatchRealAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks pgx and GORM from source")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	gowork := exec.Command("go", "env", "GOWORK")
	gowork.Dir = root
	if out, err := gowork.Output(); err != nil || strings.TrimSpace(string(out)) != filepath.Join(root, "go.work") {
		t.Skip("not inside the dbop workspace, where the real packages are")
	}
	paths := []string{
		"github.com/dbop-go/dbop",
		"github.com/dbop-go/dbop/scopes",
		"github.com/dbop-go/dbop/adapters/pgxdb",
		"github.com/dbop-go/dbop/adapters/sqldb",
		"github.com/dbop-go/dbop/adapters/gormdb",
		"github.com/jackc/pgx/v5",
		"github.com/jackc/pgx/v5/pgconn",
		"github.com/jackc/pgx/v5/pgxpool",
		"gorm.io/gorm",
	}
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	stubs := load(t, testdata, []string{"GOPATH=" + testdata, "GO111MODULE=off", "GOWORK=off", "GOFLAGS="}, paths)
	real := load(t, root, nil, paths)
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			stub, want := stubs[path].Scope(), real[path].Scope()
			for _, name := range stub.Names() {
				obj := stub.Lookup(name)
				if !obj.Exported() {
					continue
				}
				realObj := want.Lookup(name)
				if realObj == nil {
					t.Errorf("the stub declares %s, which the real package does not", name)
					continue
				}
				switch obj := obj.(type) {
				case *types.Func:
					if got, want := signature(obj.Type()), signature(realObj.Type()); got != want {
						t.Errorf("%s:\nstub %s\nreal %s", name, got, want)
					}
				case *types.TypeName:
					compareMethods(t, name, obj.Type(), realObj.Type())
				}
			}
		})
	}
}

func load(t *testing.T, dir string, env []string, paths []string) map[string]*types.Package {
	t.Helper()
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedTypes | packages.NeedImports | packages.NeedDeps,
		Dir:  dir,
		Env:  append(os.Environ(), env...),
	}
	pkgs, err := packages.Load(cfg, paths...)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]*types.Package{}
	for _, p := range pkgs {
		if len(p.Errors) > 0 {
			t.Fatalf("loading %s in %s: %v", p.PkgPath, dir, p.Errors)
		}
		byPath[p.PkgPath] = p.Types
	}
	return byPath
}

// compareMethods checks that each exported method the stub type declares
// has the real method's signature.
func compareMethods(t *testing.T, name string, stub, real types.Type) {
	t.Helper()
	stubSet := types.NewMethodSet(types.NewPointer(stub))
	if types.IsInterface(stub) {
		stubSet = types.NewMethodSet(stub)
	}
	for i := range stubSet.Len() {
		m := stubSet.At(i).Obj()
		if !m.Exported() {
			continue
		}
		obj, _, _ := types.LookupFieldOrMethod(real, true, nil, m.Name())
		rm, ok := obj.(*types.Func)
		if !ok {
			t.Errorf("the stub's %s has a method %s, which the real type lacks", name, m.Name())
			continue
		}
		if got, want := signature(m.Type()), signature(rm.Type()); got != want {
			t.Errorf("%s.%s:\nstub %s\nreal %s", name, m.Name(), got, want)
		}
	}
}

// signature prints a function type without its parameter names.
func signature(t types.Type) string {
	sig := t.(*types.Signature)
	var b strings.Builder
	if tps := sig.TypeParams(); tps != nil {
		var s []string
		for i := range tps.Len() {
			s = append(s, types.TypeString(tps.At(i).Constraint(), nil))
		}
		fmt.Fprintf(&b, "[%s]", strings.Join(s, ", "))
	}
	tuple := func(tu *types.Tuple, variadic bool) string {
		var s []string
		for i := range tu.Len() {
			ts := types.TypeString(tu.At(i).Type(), nil)
			if variadic && i == tu.Len()-1 {
				ts = "..." + strings.TrimPrefix(ts, "[]")
			}
			s = append(s, ts)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	b.WriteString("func" + tuple(sig.Params(), sig.Variadic()) + " " + tuple(sig.Results(), false))
	return b.String()
}
