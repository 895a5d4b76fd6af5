package dbopvet_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/dbop-go/dbop/dbopvet"
)

var (
	fenced  = regexp.MustCompile("(?s)```(go|text)\n(.*?)```")
	wantRem = regexp.MustCompile(" // want .*$")
	lineRef = regexp.MustCompile(`\(line \d+\)`)
)

// docs/dbopvet.md shows one example per check and the message dbopvet
// prints for it: each Go block of the document is in testdata/src/docs,
// where the analyzer's tests run it, and each message block is one of
// the findings on that package.
func TestDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "dbopvet.md"))
	if os.IsNotExist(err) {
		t.Skip("docs/dbopvet.md is not beside the module (not a checkout of the repository)")
	}
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join("testdata", "src", "docs", "docs.go"))
	if err != nil {
		t.Fatal(err)
	}
	code := normalizeCode(string(src))

	results := analysistest.Run(t, analysistest.TestData(), dbopvet.Analyzer, "docs")
	var messages []string
	for _, r := range results {
		for _, d := range r.Diagnostics {
			messages = append(messages, lineRef.ReplaceAllString(d.Message, "(line N)"))
		}
	}

	blocks := fenced.FindAllStringSubmatch(string(doc), -1)
	var goBlocks, textBlocks int
	for _, m := range blocks {
		switch m[1] {
		case "go":
			goBlocks++
			if !strings.Contains(code, normalizeCode(m[2])) {
				t.Errorf("this Go block of docs/dbopvet.md is not in testdata/src/docs/docs.go:\n%s", m[2])
			}
		case "text":
			textBlocks++
			// The document's line numbers are the reader's, not testdata's.
			msg := lineRef.ReplaceAllString(strings.Join(strings.Fields(m[2]), " "), "(line N)")
			if !slices.Contains(messages, msg) {
				t.Errorf("docs/dbopvet.md shows a message dbopvet does not print:\n%s\nit prints:\n%s", msg, strings.Join(messages, "\n"))
			}
		}
	}
	if goBlocks < 5 || textBlocks < 4 {
		t.Errorf("found %d Go blocks and %d messages in docs/dbopvet.md; want an example and a message per check", goBlocks, textBlocks)
	}
}

// normalizeCode drops indentation, blank lines and // want comments.
func normalizeCode(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(wantRem.ReplaceAllString(line, ""))
		if line != "" {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
