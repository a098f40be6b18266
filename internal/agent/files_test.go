//go:build linux

package agent

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func workspace(t *testing.T) (Sandbox, string) {
	t.Helper()
	dir := t.TempDir()
	return Sandbox{UID: os.Getuid(), GID: os.Getgid(), Wipe: []string{dir}}, dir
}

type entry struct {
	name, body string
	typ        byte
	mode       int64
}

func archive(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if e.typ == tar.TypeSymlink {
			h.Linkname, h.Size = e.body, 0
		}
		must(t, tw.WriteHeader(h))
		if e.typ == tar.TypeReg {
			_, err := io.WriteString(tw, e.body)
			must(t, err)
		}
	}
	must(t, tw.Close())
	return &b
}

func TestExtractWritesFilesWithTheirModes(t *testing.T) {
	t.Parallel()
	sb, dir := workspace(t)
	n, err := sb.Extract(archive(t,
		entry{name: "run.sh", body: "echo hi", typ: tar.TypeReg, mode: 0o4755},
		entry{name: "src/", typ: tar.TypeDir, mode: 0o700},
		entry{name: "src/deep/main.go", body: "package main", typ: tar.TypeReg, mode: 0o644},
	), 1<<20)
	if err != nil || n != 2 {
		t.Fatalf("Extract = %d, %v", n, err)
	}
	st, err := os.Stat(filepath.Join(dir, "run.sh"))
	must(t, err)
	if st.Mode() != 0o755 {
		t.Errorf("run.sh mode %v, want 0755 (no setuid bit)", st.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "src/deep/main.go")); string(b) != "package main" {
		t.Errorf("src/deep/main.go holds %q", b)
	}
}

func TestExtractRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		prepare func(t *testing.T, dir, outside string)
		archive []entry
		want    string
	}{
		{name: "a parent path", archive: []entry{{name: "../escape", body: "x", typ: tar.TypeReg}}, want: "archive entry"},
		{name: "an absolute path", archive: []entry{{name: "/etc/escape", body: "x", typ: tar.TypeReg}}, want: "archive entry"},
		{name: "a symbolic link", archive: []entry{{name: "link", body: "/etc", typ: tar.TypeSymlink}}, want: "only files and directories"},
		{name: "a hard link", archive: []entry{{name: "link", body: "x", typ: tar.TypeLink}}, want: "only files and directories"},
		{
			name: "a directory that is a link",
			prepare: func(t *testing.T, dir, outside string) {
				must(t, os.Symlink(outside, filepath.Join(dir, "d")))
			},
			archive: []entry{{name: "d/escape", body: "x", typ: tar.TypeReg}},
			want:    "open directory d",
		},
		{
			name: "a file that is a link",
			prepare: func(t *testing.T, dir, outside string) {
				must(t, os.Symlink(filepath.Join(outside, "escape"), filepath.Join(dir, "f")))
			},
			archive: []entry{{name: "f", body: "x", typ: tar.TypeReg}},
			want:    "create f",
		},
		{
			name: "an existing file",
			prepare: func(t *testing.T, dir, _ string) {
				must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("old"), 0o644))
			},
			archive: []entry{{name: "f", body: "new", typ: tar.TypeReg}},
			want:    "create f",
		},
		{name: "an archive over its cap", archive: []entry{{name: "big", body: strings.Repeat("x", 4096), typ: tar.TypeReg}}, want: "over 1024 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sb, dir := workspace(t)
			outside := t.TempDir()
			if c.prepare != nil {
				c.prepare(t, dir, outside)
			}
			_, err := sb.Extract(archive(t, c.archive...), 1024)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Extract: %v, want an error saying %q", err, c.want)
			}
			if left := entries(t, outside); len(left) != 0 {
				t.Errorf("written outside the workspace: %v", left)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "f")); err == nil && string(b) == "new" {
				t.Error("an existing file was overwritten")
			}
		})
	}
}

type collected struct {
	body, link, err string
}

func collect(t *testing.T, sb Sandbox, spec CollectSpec) (map[string]collected, string) {
	t.Helper()
	if spec.Deadline.IsZero() {
		spec.Deadline = time.Now().Add(10 * time.Second)
	}
	var b bytes.Buffer
	rep, err := sb.Archive(&b, spec)
	if err != nil {
		t.Fatalf("Archive: %v", err)
	}
	got := map[string]collected{}
	tr := tar.NewReader(&b)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return got, rep.Truncated
		}
		must(t, err)
		body, err := io.ReadAll(tr)
		must(t, err)
		got[h.Name] = collected{body: string(body), link: h.Linkname, err: h.PAXRecords[PAXError]}
	}
}

func TestArchiveReturnsOnlyWhatTheGlobsName(t *testing.T) {
	t.Parallel()
	sb, dir := workspace(t)
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "out/sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "out/a.txt"), []byte("a"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "out/sub/b.txt"), []byte("b"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "out/.env"), []byte("TOKEN"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "other.txt"), []byte("o"), 0o644))
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "out/link")))
	must(t, os.Symlink(outside, filepath.Join(dir, "out/dirlink")))
	must(t, unix.Mkfifo(filepath.Join(dir, "out/fifo"), 0o644))

	got, truncated := collect(t, sb, CollectSpec{Globs: []string{"out/**"}, MaxBytes: 1 << 20, MaxEntries: 100})
	if truncated != "" {
		t.Errorf("truncated: %s", truncated)
	}
	want := map[string]collected{
		"out/a.txt":     {body: "a"},
		"out/sub/b.txt": {body: "b"},
		"out/link":      {link: filepath.Join(outside, "secret")},
		"out/dirlink":   {link: outside},
		"out/fifo":      {err: "not returned: a FIFO, not a regular file"},
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s: got %+v (present %v), want %+v", name, g, ok, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s returned; no glob names it", name)
		}
	}
	for _, g := range got {
		if strings.Contains(g.body, "host secret") {
			t.Error("a link was followed")
		}
	}
}

func TestArchiveCaps(t *testing.T) {
	t.Parallel()
	sb, dir := workspace(t)
	for _, name := range []string{"a", "b", "c", "d"} {
		must(t, os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte(name), 600), 0o644))
	}
	got, truncated := collect(t, sb, CollectSpec{Globs: []string{"*"}, MaxBytes: 1000, MaxEntries: 3})
	if !strings.Contains(truncated, "more than 3 files") {
		t.Errorf("truncated = %q, want the entry cap named", truncated)
	}
	if len(got) != 3 {
		t.Errorf("returned %d entries, want 3", len(got))
	}
	if got["a"].body != strings.Repeat("a", 600) {
		t.Errorf("a: %+v", got["a"])
	}
	if g := got["b"]; g.body != "" || !strings.Contains(g.err, "over what is left of the 1000-byte cap") {
		t.Errorf("b over the byte cap: %+v", g)
	}

	_, truncated = collect(t, sb, CollectSpec{Globs: []string{"*"}, MaxBytes: 1000, MaxEntries: 10, Deadline: time.Now().Add(-time.Second)})
	if !strings.Contains(truncated, "out of time") {
		t.Errorf("past its deadline, truncated = %q", truncated)
	}
}
