package producer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

func TestWriteFilesNeverWritesOutsideWhereAsked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outside := t.TempDir()
	mustWrite(t, filepath.Join(dir, "existing"), "mine\n")
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	files := []tasks.CollectedFile{
		{Path: "new/deep/file", Content: []byte("new\n"), Mode: 0o644},
		{Path: "existing", Content: []byte("evil\n")},
		{Path: "link/escape", Content: []byte("evil\n")},
		{Path: "dangling", Content: []byte("evil\n")},
		{Path: "setuid", Content: []byte("x"), Mode: 0o6755},
		{Path: ".git/config", Content: []byte("evil\n")},
		{Path: "../up", Content: []byte("evil\n")},
		{Path: "/abs", Content: []byte("evil\n")},
		{Path: "reported", Error: "not returned: symbolic link"},
	}
	skipped, err := producer.WriteFiles(dir, files, producer.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range skipped {
		got[s.Path] = s.Reason
	}
	for _, p := range []string{"existing", "link/escape", "dangling", ".git/config", "../up", "/abs", "reported"} {
		if got[p] == "" {
			t.Errorf("%s was written; want it refused", p)
		}
	}
	if len(got) != 7 {
		t.Errorf("refused %v; want 7", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "existing")); string(b) != "mine\n" {
		t.Errorf("existing = %q", b)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote %d entries outside", len(entries))
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "new/deep/file")); string(b) != "new\n" {
		t.Errorf("new/deep/file = %q", b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "setuid")); err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
		t.Errorf("setuid: %v %v", fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		t.Errorf(".git was made")
	}
}

func TestWriteFilesWithGlobsAndForce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "existing"), "mine\n")
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	files := []tasks.CollectedFile{
		{Path: "existing", Content: []byte("new\n")},
		{Path: ".git/config", Content: []byte("named\n")},
		{Path: ".env", Content: []byte("not named\n")},
		{Path: "link", Content: []byte("over a link\n")},
	}
	skipped, err := producer.WriteFiles(dir, files, producer.WriteOptions{Globs: []string{"*", ".git/*"}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range skipped {
		names = append(names, s.Path)
	}
	if strings.Join(names, " ") != ".env link" {
		t.Errorf("refused %v, want .env and link", skipped)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "existing")); string(b) != "new\n" {
		t.Errorf("--force did not overwrite: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".git/config")); string(b) != "named\n" {
		t.Errorf(".git/config = %q", b)
	}
}

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
