package gclplugin_test

import (
	"testing"

	"github.com/golangci/plugin-module-register/register"

	"github.com/dbop-go/dbop/dbopvet"
	"github.com/dbop-go/dbop/dbopvet/gclplugin"
)

// golangci-lint finds the plugin by its name and builds dbopvet's
// analyzer from it.
func TestPlugin(t *testing.T) {
	newPlugin, err := register.GetPlugin("dbopvet")
	if err != nil {
		t.Fatal(err)
	}
	for name, build := range map[string]register.NewPlugin{"registered": newPlugin, "New": gclplugin.New} {
		t.Run(name, func(t *testing.T) {
			p, err := build(map[string]any{})
			if err != nil {
				t.Fatal(err)
			}
			as, err := p.BuildAnalyzers()
			if err != nil || len(as) != 1 || as[0] != dbopvet.Analyzer {
				t.Errorf("BuildAnalyzers() = %v, %v; want dbopvet.Analyzer alone", as, err)
			}
			if mode := p.GetLoadMode(); mode != register.LoadModeTypesInfo {
				t.Errorf("GetLoadMode() = %q, want %q", mode, register.LoadModeTypesInfo)
			}
		})
	}
}
