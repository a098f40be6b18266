package transfer_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/execq/execq/internal/sandbox/transfer"
	"github.com/execq/execq/tasks"
)

func TestTarThenReadCollected(t *testing.T) {
	t.Parallel()
	files := []tasks.File{
		{Path: "a.txt", Content: []byte("a")},
		{Path: "src/deep/main.go", Content: []byte("package main"), Mode: 0o755},
	}
	archive, err := transfer.Tar(files)
	if err != nil {
		t.Fatal(err)
	}
	got, err := transfer.ReadCollected(bytes.NewReader(archive), []string{"**"}, 1<<20, 10)
	if err != nil {
		t.Fatalf("ReadCollected: %v", err)
	}
	if len(got) != 2 || string(got[1].Content) != "package main" || got[1].Mode != 0o755 || got[0].Mode != 0o644 {
		t.Errorf("read back %+v", got)
	}
	if _, err := transfer.Tar([]tasks.File{{Path: "../escape"}}); err == nil {
		t.Error("Tar took a path outside the workspace")
	}
}

type header = tar.Header

func build(t *testing.T, headers ...header) *bytes.Reader {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range headers {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bytes.Repeat([]byte("x"), int(h.Size))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b.Bytes())
}

// What a lying agent, or a tenant that took over one, might send back.
func TestReadCollectedTrustsNothing(t *testing.T) {
	t.Parallel()
	reg := func(name string, size int64) header {
		return header{Name: name, Typeflag: tar.TypeReg, Size: size, Mode: 0o644}
	}
	cases := []struct {
		name    string
		headers []header
		want    string
		tooBig  bool
	}{
		{name: "a parent path", headers: []header{reg("../../etc/cron.d/x", 1)}, want: "names"},
		{name: "an absolute path", headers: []header{reg("/etc/passwd", 1)}, want: "names"},
		{name: "a path no glob matches", headers: []header{reg("other.txt", 1)}, want: "which no glob matches"},
		{name: "a dotfile the globs do not name", headers: []header{reg("out/.env", 1)}, want: "which no glob matches"},
		{name: "more entries than the cap", headers: []header{reg("out/1", 1), reg("out/2", 1), reg("out/3", 1)}, tooBig: true},
		{name: "more content than the cap", headers: []header{reg("out/big", 2000)}, tooBig: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := transfer.ReadCollected(build(t, c.headers...), []string{"out/**"}, 1000, 2)
			switch {
			case c.tooBig && !errors.Is(err, transfer.ErrArchiveTooLarge):
				t.Errorf("ReadCollected: %v, want ErrArchiveTooLarge", err)
			case !c.tooBig && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("ReadCollected: %v, want an error saying %q", err, c.want)
			}
		})
	}
}

func TestReadCollectedReturnsNoContentForWhatIsNotAFile(t *testing.T) {
	t.Parallel()
	got, err := transfer.ReadCollected(build(t,
		header{Name: "out/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"},
		header{Name: "out/hard", Typeflag: tar.TypeLink, Linkname: "out/link"},
		header{Name: "out/fifo", Typeflag: tar.TypeFifo},
		header{Name: "out/marked", Typeflag: tar.TypeReg, PAXRecords: map[string]string{transfer.PAXError: "not returned: too big"}},
		header{Name: "out/bad\xff", Typeflag: tar.TypeReg, Size: 3},
	), []string{"out/**"}, 1000, 10)
	if err != nil {
		t.Fatalf("ReadCollected: %v", err)
	}
	want := map[string]string{
		"out/link":      `not returned: symbolic link to "/etc/shadow"`,
		"out/hard":      `not returned: hard link to "out/link"`,
		"out/fifo":      "not returned: not a regular file",
		"out/marked":    "not returned: too big",
		"out/bad\uFFFD": `not returned: its name is not valid UTF-8 ("out/bad\xff")`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for _, f := range got {
		if f.Error != want[f.Path] || f.Content != nil || f.Size != 0 {
			t.Errorf("%s: %+v, want error %q and no content", f.Path, f, want[f.Path])
		}
	}
}
