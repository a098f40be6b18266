package producer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/execq/execq/tasks"
)

// WriteOptions say how WriteFiles writes collected files.
type WriteOptions struct {
	// Globs are the request's collect globs. A file that none matches is
	// not written; nil writes no file with a dot segment (".git/config",
	// ".env") at all.
	Globs []string
	// Force overwrites existing regular files. Without it, a file that
	// exists is never replaced.
	Force bool
}

// NotWritten is a collected file WriteFiles did not write, and why.
type NotWritten struct {
	Path   string
	Reason string
}

// WriteFiles writes collected files under dir, trusting nothing about
// them: what a sandbox produced is the tenant's. Paths are checked as a
// request's are (relative, no ".."); every write is confined to dir
// (os.Root) and never goes through a symbolic link, nor over an existing
// file unless opts.Force says so, and never over anything but a regular
// file; modes keep their permission bits only (no setuid, setgid or sticky
// bit); dotfiles are written only when a glob names them. Files the worker
// returned without content (an Error) are not written.
//
// It returns the files it did not write and why; the error is for dir
// itself.
func WriteFiles(dir string, files []tasks.CollectedFile, opts WriteOptions) ([]NotWritten, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s for the collected files: %w", dir, err)
	}
	defer root.Close()
	var skipped []NotWritten
	for _, f := range files {
		if err := writeFile(root, f, opts); err != nil {
			skipped = append(skipped, NotWritten{Path: f.Path, Reason: err.Error()})
		}
	}
	return skipped, nil
}

func writeFile(root *os.Root, f tasks.CollectedFile, opts WriteOptions) error {
	if f.Error != "" {
		return errors.New(f.Error)
	}
	name, err := tasks.WorkspacePath(f.Path)
	if err != nil {
		return err
	}
	if opts.Globs != nil && !tasks.MatchAny(opts.Globs, name) {
		return errors.New("no collect glob names it")
	}
	if opts.Globs == nil && hasDotSegment(name) {
		return errors.New("a dotfile, and no collect glob names it")
	}
	if dir := path.Dir(name); dir != "." {
		if err := mkdirs(root, dir); err != nil {
			return err
		}
	}
	if fi, err := root.Lstat(name); err == nil {
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return errors.New("a symbolic link is in its place; it is not followed")
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%s is in its place", describeMode(fi.Mode()))
		case !opts.Force:
			return errors.New("the file exists; --force overwrites it")
		}
		if err := root.Remove(name); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	mode := fs.FileMode(f.Mode) & 0o777
	if mode == 0 {
		mode = 0o644
	}
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := out.Write(f.Content); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// mkdirs makes dir and its parents under root, refusing any that is a
// symbolic link or not a directory.
func mkdirs(root *os.Root, dir string) error {
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := root.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link; it is not followed", p)
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		}
	}
	return nil
}

func hasDotSegment(name string) bool {
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return true
		}
	}
	return false
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}
