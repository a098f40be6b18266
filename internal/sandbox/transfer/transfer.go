// Package transfer builds the tar archives that carry a request's files
// into a sandbox, and reads back the archives of collected files that come
// out of one, trusting nothing in them: every path is checked as a
// request's paths are, every size against the caps.
package transfer

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/execq/execq/tasks"
)

// PAXError is the PAX record with which the agent marks an entry it
// returns without content, saying why.
const PAXError = "EXECQ.error"

// Tar builds the archive of files, every parent directory an entry of
// mode 0755 before what it holds.
func Tar(files []tasks.File) ([]byte, error) {
	now := time.Now()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		name, err := tasks.WorkspacePath(f.Path)
		if err != nil {
			return nil, err
		}
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if dirs[dir] {
				break
			}
			dirs[dir] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted) // parents before children
	for _, d := range sorted {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		name, _ := tasks.WorkspacePath(f.Path)
		mode := int64(f.Mode & 0o777)
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(f.Content)), ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MetadataAllowance is what an archive of collected files may hold beyond
// their content: headers of up to the entry cap.
func MetadataAllowance(maxEntries int) int64 { return int64(maxEntries+16) * 6 << 10 }

// ErrArchiveTooLarge is returned when an archive of collected files is
// larger than its caps allow.
var ErrArchiveTooLarge = errors.New("the archive of collected files is over its caps")

// ReadCollected reads an archive of collected files. Each entry's path is
// checked (relative, no "..") and must match globs; more than maxEntries
// entries, content beyond maxBytes, or an archive over maxBytes plus the
// metadata allowance is an error, and reading stops there.
func ReadCollected(r io.Reader, globs []string, maxBytes int64, maxEntries int) ([]tasks.CollectedFile, error) {
	limit := maxBytes + MetadataAllowance(maxEntries)
	lr := &io.LimitedReader{R: r, N: limit + 1}
	tr := tar.NewReader(lr)
	var files []tasks.CollectedFile
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			if lr.N <= 0 {
				return files, ErrArchiveTooLarge
			}
			return files, fmt.Errorf("read the archive of collected files: %w", err)
		}
		name, err := tasks.WorkspacePath(h.Name)
		if err != nil {
			return files, fmt.Errorf("the archive of collected files names %q: %w", h.Name, err)
		}
		if !tasks.MatchAny(globs, name) {
			return files, fmt.Errorf("the archive of collected files holds %q, which no glob matches", name)
		}
		if len(files) >= maxEntries {
			return files, fmt.Errorf("%w: more than %d entries", ErrArchiveTooLarge, maxEntries)
		}
		f := tasks.CollectedFile{Path: name, Size: h.Size, Mode: tasks.FileMode(h.Mode & 0o777)}
		switch {
		case h.Typeflag == tar.TypeDir:
			continue
		case !utf8.ValidString(name):
			// A result carries names as JSON text, which would change this
			// one: it would be written under another name, or over another
			// file's.
			f.Path = strings.ToValidUTF8(name, "\uFFFD")
			f.Size, f.Error = 0, fmt.Sprintf("not returned: its name is not valid UTF-8 (%q)", name)
		case h.PAXRecords[PAXError] != "":
			f.Size, f.Error = 0, h.PAXRecords[PAXError]
		case h.Typeflag == tar.TypeReg:
			if total+h.Size > maxBytes {
				return files, fmt.Errorf("%w: %s would pass the %d-byte cap", ErrArchiveTooLarge, name, maxBytes)
			}
			content, err := io.ReadAll(io.LimitReader(tr, h.Size))
			if err != nil {
				return files, fmt.Errorf("read %s from the archive: %w", name, err)
			}
			f.Content = content
			total += int64(len(content))
		case h.Typeflag == tar.TypeSymlink:
			f.Size, f.Error = 0, fmt.Sprintf("not returned: symbolic link to %q", h.Linkname)
		case h.Typeflag == tar.TypeLink:
			f.Size, f.Error = 0, fmt.Sprintf("not returned: hard link to %q", h.Linkname)
		default:
			f.Size, f.Error = 0, "not returned: not a regular file"
		}
		files = append(files, f)
	}
}
