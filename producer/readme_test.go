//go:build integration

package producer_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/execq/execq/internal/testutil"
)

// The README's Go example compiles as written: it is put in a function
// and built against this module.
func TestREADMEGoExampleCompiles(t *testing.T) {
	root := testutil.RepoRoot()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	section := strings.Index(text, "### From Go")
	start := strings.Index(text[section:], "```go\n")
	if section < 0 || start < 0 {
		t.Fatal("the README has no Go example under \"### From Go\"")
	}
	code := text[section+start+len("```go\n"):]
	code = code[:strings.Index(code, "```")]

	dir := t.TempDir()
	program := `package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

func run(ctx context.Context, script []byte) error {
` + code + `	_ = skipped
	return nil
}

func main() { _ = run(context.Background(), nil) }
`
	gomod := "module readme\n\ngo 1.26\n\nrequire github.com/execq/execq v0.0.0\n\nreplace github.com/execq/execq => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"main.go": []byte(program), "go.mod": []byte(gomod), "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(testutil.GoTool(), "vet", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the README's Go example does not build: %v\n%s\n%s", err, out, program)
	}
}
