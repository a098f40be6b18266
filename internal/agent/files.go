//go:build linux

package agent

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/execq/execq/internal/agent/proto"
	"github.com/execq/execq/tasks"
)

// PAXError is the PAX record that says why an entry of a collection has
// no content (transfer.PAXError on the worker's side).
const PAXError = "EXECQ.error"

// Extract writes the regular files and directories of a tar archive into
// the workspace, owned by the sandbox's user: paths are checked as a
// request's are, parents are created with mode 0755, nothing is followed
// through a symbolic link, and nothing that exists is overwritten (the
// workspace is empty when files go in). It reads at most maxBytes of
// archive.
func (s Sandbox) Extract(r io.Reader, maxBytes int64) (int, error) {
	root, err := openDir(unix.AT_FDCWD, s.wipeList()[0])
	if err != nil {
		return 0, fmt.Errorf("open the workspace: %w", err)
	}
	defer unix.Close(root)
	lr := &io.LimitedReader{R: r, N: maxBytes + 1}
	tr := tar.NewReader(lr)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			if lr.N <= 0 {
				return n, fmt.Errorf("the archive is over %d bytes", maxBytes)
			}
			return n, fmt.Errorf("read archive: %w", err)
		}
		name, err := tasks.WorkspacePath(strings.TrimSuffix(h.Name, "/"))
		if err != nil {
			return n, fmt.Errorf("archive entry: %w", err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			dir, err := s.mkdirAll(root, name)
			if err != nil {
				return n, err
			}
			unix.Close(dir)
		case tar.TypeReg:
			if err := s.writeFile(root, name, uint32(h.Mode)&0o777, tr); err != nil {
				if lr.N <= 0 {
					return n, fmt.Errorf("the archive is over %d bytes", maxBytes)
				}
				return n, err
			}
			n++
		default:
			return n, fmt.Errorf("archive entry %s: only files and directories go into the workspace", name)
		}
	}
}

// mkdirAll opens dir under root, creating what is missing, and returns its
// descriptor.
func (s Sandbox) mkdirAll(root int, dir string) (int, error) {
	fd, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	for _, part := range strings.Split(dir, "/") {
		err := unix.Mkdirat(fd, part, 0o755)
		created := err == nil
		if err != nil && err != unix.EEXIST {
			unix.Close(fd)
			return -1, fmt.Errorf("make directory %s: %w", dir, err)
		}
		next, err := openDir(fd, part)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("open directory %s: %w", dir, err)
		}
		if created {
			if err := s.own(next, 0o755); err != nil {
				unix.Close(next)
				return -1, fmt.Errorf("directory %s: %w", dir, err)
			}
		}
		fd = next
	}
	return fd, nil
}

func (s Sandbox) writeFile(root int, name string, mode uint32, content io.Reader) error {
	if mode == 0 {
		mode = 0o644
	}
	parent := root
	if dir := path.Dir(name); dir != "." {
		fd, err := s.mkdirAll(root, dir)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		parent = fd
	}
	fd, err := unix.Openat(parent, path.Base(name), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer unix.Close(fd)
	if _, err := io.Copy(fdWriter(fd), content); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := s.own(fd, mode); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// own gives what fd names to the sandbox's user with mode.
func (s Sandbox) own(fd int, mode uint32) error {
	if s.AsAgent {
		if err := unix.Fchown(fd, s.UID, s.GID); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

type fdReader int

func (r fdReader) Read(p []byte) (int, error) {
	n, err := unix.Read(int(r), p)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// CollectSpec says what a collection returns.
type CollectSpec struct {
	Globs []string
	// MaxBytes bounds the content of the files returned.
	MaxBytes int64
	// MaxEntries bounds the entries returned.
	MaxEntries int
	// Deadline bounds the walk.
	Deadline time.Time
}

// maxCollectPath bounds the paths a collection looks at.
const maxCollectPath = 4096

// Archive writes a tar archive of the workspace's entries that match the
// globs: regular files with their content while it fits in MaxBytes, and,
// without content and with a PAXError record saying why, files over it,
// FIFOs, sockets and devices; symbolic links as links, never followed. It
// walks only into directories under which a glob may match, never through a
// symbolic link, and stops at MaxEntries entries or the deadline, which the
// report says.
func (s Sandbox) Archive(w io.Writer, spec CollectSpec) (proto.CollectReport, error) {
	var rep proto.CollectReport
	root, err := openDir(unix.AT_FDCWD, s.wipeList()[0])
	if err != nil {
		return rep, fmt.Errorf("open the workspace: %w", err)
	}
	defer unix.Close(root)
	chunk := getChunk()
	defer putChunk(chunk)
	a := &archiver{tw: tar.NewWriter(w), spec: spec, rep: &rep, buf: *chunk}
	err = a.walk(root, "")
	if errors.Is(err, errStop) {
		err = nil
	}
	if err != nil {
		return rep, err
	}
	return rep, a.tw.Close()
}

var errStop = errors.New("collection cut short")

type archiver struct {
	tw      *tar.Writer
	spec    CollectSpec
	rep     *proto.CollectReport
	buf     []byte
	entries int
	bytes   int64
}

func (a *archiver) walk(dirfd int, rel string) error {
	names, err := allNames(dirfd, a.buf)
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		if time.Now().After(a.spec.Deadline) {
			a.rep.Truncated = "the collection ran out of time"
			return errStop
		}
		a.rep.Visited++
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		if len(p) > maxCollectPath {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if !tasks.MayMatchUnder(a.spec.Globs, p) {
				continue
			}
			sub, err := openDir(dirfd, name)
			if err != nil {
				continue
			}
			err = a.walk(sub, p)
			unix.Close(sub)
			if err != nil {
				return err
			}
			continue
		}
		if !tasks.MatchAny(a.spec.Globs, p) {
			continue
		}
		if a.entries >= a.spec.MaxEntries {
			a.rep.Truncated = fmt.Sprintf("more than %d files match", a.spec.MaxEntries)
			return errStop
		}
		a.entries++
		if err := a.add(dirfd, name, p, &st); err != nil {
			return err
		}
	}
	return nil
}

// allNames reads every entry name of the directory open at dirfd.
func allNames(dirfd int, buf []byte) ([]string, error) {
	var all []string
	for {
		names, err := readNames(dirfd, buf)
		if err != nil || len(names) == 0 {
			return all, err
		}
		all = append(all, names...)
	}
}

func (a *archiver) add(dirfd int, name, p string, st *unix.Stat_t) error {
	h := &tar.Header{Name: p, Mode: int64(st.Mode & 0o777), ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec), Format: tar.FormatPAX}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		h.Typeflag = tar.TypeReg
		if a.bytes+st.Size > a.spec.MaxBytes {
			h.PAXRecords = map[string]string{PAXError: fmt.Sprintf("not returned: %d bytes, over what is left of the %d-byte cap on collected files", st.Size, a.spec.MaxBytes)}
			return a.tw.WriteHeader(h)
		}
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			h.PAXRecords = map[string]string{PAXError: "not returned: " + err.Error()}
			return a.tw.WriteHeader(h)
		}
		defer unix.Close(fd)
		h.Size = st.Size
		if err := a.tw.WriteHeader(h); err != nil {
			return err
		}
		n, err := io.CopyN(a.tw, fdReader(fd), st.Size)
		a.bytes += n
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		return nil
	case unix.S_IFLNK:
		target := make([]byte, 4096)
		n, err := unix.Readlinkat(dirfd, name, target)
		if err != nil {
			n = 0
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, string(target[:n])
	default:
		h.Typeflag = tar.TypeReg
		h.PAXRecords = map[string]string{PAXError: "not returned: " + fileKind(st.Mode) + ", not a regular file"}
	}
	return a.tw.WriteHeader(h)
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	}
	return "a special file"
}
