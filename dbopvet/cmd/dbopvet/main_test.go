package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The command runs on its own, with package patterns, and as go vet's
// -vettool; both report the findings and exit with a failure.
func TestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and runs the go command")
	}
	bin := filepath.Join(t.TempDir(), "dbopvet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	testdata, err := filepath.Abs(filepath.Join("..", "..", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	// The testdata is a GOPATH tree, with stubs of dbop, pgx and GORM.
	env := append(os.Environ(), "GOPATH="+testdata, "GO111MODULE=off", "GOWORK=off", "GOFLAGS=")
	src, err := os.ReadFile(filepath.Join(testdata, "src", "outsidetx", "outsidetx.go"))
	if err != nil {
		t.Fatal(err)
	}
	wants := strings.Count(string(src), "// want `")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"standalone", []string{bin, "outsidetx"}},
		{"go vet -vettool", []string{"go", "vet", "-vettool=" + bin, "outsidetx"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(tt.args[0], tt.args[1:]...)
			cmd.Dir = filepath.Join(testdata, "src", "outsidetx")
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("%s exited 0; want a failure for the findings\n%s", strings.Join(tt.args, " "), out)
			}
			want := "outsidetx.go:32:13: pool (*pgxpool.Pool) runs this statement outside the transaction pgxdb.Do handed in"
			if !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
			if got := strings.Count(string(out), "outsidetx.go:"); got != wants {
				t.Errorf("%d findings; want the %d the file marks with // want:\n%s", got, wants, out)
			}
		})
	}
}
