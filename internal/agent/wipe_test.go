//go:build linux

package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/execq/execq/internal/testutil"
)

// hostileTree fills dir with what a tenant can leave behind: a tree deeper
// than PATH_MAX, directories and files with mode 0, a FIFO, hard and
// symbolic links, one of them to outside, whose target must survive.
func hostileTree(t *testing.T, dir, outside string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", 100)
	for range 60 { // 60 × 101 bytes: past PATH_MAX (4096)
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = next
	}
	if err := unix.Mkfifoat(fd, "fifo", 0o600); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)

	locked := filepath.Join(dir, "locked")
	must(t, os.MkdirAll(filepath.Join(locked, "inner"), 0o755))
	must(t, os.WriteFile(filepath.Join(locked, "inner", "secret"), []byte("s"), 0o600))
	must(t, os.Chmod(filepath.Join(locked, "inner", "secret"), 0))
	must(t, os.Chmod(filepath.Join(locked, "inner"), 0))
	must(t, os.Chmod(locked, 0))
	must(t, os.WriteFile(filepath.Join(dir, "file"), []byte("f"), 0))
	must(t, os.Link(filepath.Join(dir, "file"), filepath.Join(dir, "hardlink")))
	must(t, os.Symlink(outside, filepath.Join(dir, "to-outside")))
	must(t, os.Symlink(filepath.Join(outside, "keep"), filepath.Join(dir, "to-outside-file")))
	must(t, os.WriteFile(filepath.Join(dir, ".hidden"), nil, 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names
}

func TestEmptyDirRemovesWhatATenantLeaves(t *testing.T) {
	t.Parallel()
	dir, outside := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644))
	hostileTree(t, dir, outside)

	n, err := emptyDir(dir, time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatalf("emptyDir: %v", err)
	}
	if left := entries(t, dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if n < 60+8 {
		t.Errorf("removed %d entries, want at least 68", n)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "keep")); err != nil || string(b) != "keep" {
		t.Errorf("a link's target was touched: %q, %v", b, err)
	}
	if empty, err := isEmpty(dir); err != nil || !empty {
		t.Errorf("isEmpty = %v, %v", empty, err)
	}
}

func TestEmptyDirRefusesALink(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "keep"), nil, 0o644))
	link := filepath.Join(t.TempDir(), "ws")
	must(t, os.Symlink(outside, link))
	if _, err := emptyDir(link, time.Now().Add(time.Second)); err == nil {
		t.Error("emptyDir went through a symbolic link")
	}
	if left := entries(t, outside); len(left) != 1 {
		t.Errorf("the link's target holds %v", left)
	}
}

func TestEmptyDirStopsAtItsDeadline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"a", "b", "c"} {
		must(t, os.WriteFile(filepath.Join(dir, name), nil, 0o644))
	}
	_, err := emptyDir(dir, time.Now().Add(-time.Second))
	if !errors.Is(err, errBudget) {
		t.Errorf("emptyDir past its deadline: %v, want errBudget", err)
	}
}

func TestClearAttributesRemovesWhatATenantMaySet(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := unix.Setxattr(dir, "user.note", []byte("left by the last tenant"), 0); err != nil {
		testutil.Missing(t, "%s takes no user.* attributes (%v)", dir, err)
	}
	// A default ACL granting nothing: u::--- g::--- o::---.
	acl := []byte{2, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	must(t, unix.Setxattr(dir, "system.posix_acl_default", acl, 0))
	names, err := tenantAttributes(dir)
	if err != nil || len(names) != 2 {
		t.Fatalf("tenantAttributes = %v, %v; want user.note and the default ACL", names, err)
	}
	n, err := clearAttributes(dir)
	if err != nil || n != 2 {
		t.Fatalf("clearAttributes = %d, %v", n, err)
	}
	if names, err := tenantAttributes(dir); err != nil || len(names) != 0 {
		t.Errorf("left: %v, %v", names, err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644))
	if st, err := os.Stat(filepath.Join(dir, "new")); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("a new file has mode %v (%v), want 0644", st.Mode(), err)
	}
}
