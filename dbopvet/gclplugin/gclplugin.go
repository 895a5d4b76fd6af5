// Package gclplugin registers dbopvet as a golangci-lint module plugin,
// under the name dbopvet. Build a golangci-lint that includes it with
// golangci-lint custom and this .custom-gcl.yml:
//
//	version: v2.15.0
//	plugins:
//	  - module: github.com/dbop-go/dbop/dbopvet
//	    import: github.com/dbop-go/dbop/dbopvet/gclplugin
//	    version: latest
//
// and enable it in .golangci.yml:
//
//	version: "2"
//	linters:
//	  enable:
//	    - dbopvet
//	  settings:
//	    custom:
//	      dbopvet:
//	        type: module
//	        description: transaction misuse in code that uses dbop
//
// The plugin has no settings. It registers itself when imported, as
// golangci-lint's module plugins must: the one init in dbop's modules.
package gclplugin

import (
	"github.com/golangci/plugin-module-register/register"
	"golang.org/x/tools/go/analysis"

	"github.com/dbop-go/dbop/dbopvet"
)

func init() { register.Plugin("dbopvet", New) }

// New returns the plugin; golangci-lint calls it with the settings of
// .golangci.yml, which dbopvet does not use.
func New(settings any) (register.LinterPlugin, error) { return plugin{}, nil }

type plugin struct{}

// BuildAnalyzers returns dbopvet's analyzer.
func (plugin) BuildAnalyzers() ([]*analysis.Analyzer, error) {
	return []*analysis.Analyzer{dbopvet.Analyzer}, nil
}

// GetLoadMode asks for type information: dbopvet resolves every call it
// checks through it.
func (plugin) GetLoadMode() string { return register.LoadModeTypesInfo }
