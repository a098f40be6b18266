package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/execq/execq/tasks"
)

// requestFlags are the flags that describe an execution, shared by run and
// submit.
type requestFlags struct {
	id        string
	queue     string
	image     string
	lang      string
	code      string
	timeout   time.Duration
	memory    string
	cpus      float64
	pids      int64
	maxOutput string
	workdir   string
	env       []string
	files     []string
	collect   []string
	stdin     bool
	session   string
}

func (f *requestFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.id, "id", "", "execution ID (default a new UUID); a repeated ID runs once")
	fs.StringVar(&f.queue, "queue", tasks.DefaultQueue, "queue to submit to")
	fs.StringVar(&f.image, "image", "", "sandbox image (default the worker's, or the language's)")
	fs.StringVar(&f.lang, "lang", "", "run a program of this language of the worker's catalogue (execq languages): its --code, or its source file given with --file, compiled first where the language is; or the command after -- in its image")
	fs.StringVar(&f.code, "code", "", "the program's source, for --lang (written where the language reads it, e.g. main.py)")
	fs.DurationVar(&f.timeout, "timeout", 0, "kill the command after this long, e.g. 500ms, 2s, 1m (default the worker's, 30s)")
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit, e.g. 64m, 1g (default the worker's, 256m)")
	fs.Float64Var(&f.cpus, "cpus", 0, "CPUs the command may use, e.g. 0.5 (default the worker's, 1)")
	fs.Int64Var(&f.pids, "pids", 0, "process limit (default the worker's, 256)")
	fs.StringVar(&f.maxOutput, "max-output", "", "keep at most this much of each of stdout and stderr, e.g. 1m (default the worker's, 1m)")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory, relative to /workspace")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable: K=V, or K to pass this shell's value")
	fs.StringArrayVar(&f.files, "file", nil, "put a local file or directory into /workspace: SRC[:DST]")
	fs.StringArrayVar(&f.collect, "collect", nil, "return files matching this glob (relative to /workspace, ** for any depth)")
	fs.BoolVar(&f.stdin, "stdin", false, "give this process's standard input to the command")
	fs.StringVar(&f.session, "session", "", "run in this session (execq session create), after its earlier executions, with the files and processes they left; the session decides the image and the limits")
}

// sessionDecides are the flags of what a session decides for its
// executions: its worker's queue, its sandbox's image and limits.
var sessionDecides = []string{"queue", "image", "memory", "cpus", "pids"}

// checkSession refuses, with --session, the flags of what the session
// decides.
func (f *requestFlags) checkSession(fs *pflag.FlagSet) error {
	if f.session == "" {
		return nil
	}
	var given []string
	for _, name := range sessionDecides {
		if fs.Changed(name) {
			given = append(given, "--"+name)
		}
	}
	if len(given) == 0 {
		return nil
	}
	return fmt.Errorf("%s given with --session: the session decides its queue, image and limits (execq session create takes --image, --lang, --memory, --cpus and --pids)",
		strings.Join(given, ", "))
}

func (f *requestFlags) request(cmd []string, stdin io.Reader) (tasks.ExecRequest, error) {
	req := tasks.ExecRequest{
		ID:       f.id,
		Queue:    f.queue,
		Image:    f.image,
		Language: f.lang,
		Code:     f.code,
		Cmd:      cmd,
		Timeout:  f.timeout,
		CPUs:     f.cpus,
		Pids:     f.pids,
		WorkDir:  f.workdir,
		Collect:  f.collect,
		Session:  f.session,
	}
	var err error
	if req.MemoryBytes, err = parseSize("--memory", f.memory); err != nil {
		return req, err
	}
	if req.MaxOutputBytes, err = parseSize("--max-output", f.maxOutput); err != nil {
		return req, err
	}
	if req.Env, err = parseEnv(f.env); err != nil {
		return req, err
	}
	if req.Files, err = readFileFlags(f.files); err != nil {
		return req, err
	}
	if f.stdin {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return req, fmt.Errorf("read standard input: %w", err)
		}
		req.Stdin = b
	}
	return req, nil
}

// parseSize reads a size as Docker does (64m, 1g: powers of 1024).
func parseSize(flag, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s %q is not a size like 64m or 1g", flag, s)
	}
	return n, nil
}

// sizeText writes n as parseSize reads it: "256m", "4g", "1500".
func sizeText(n int64) string {
	for _, u := range []struct {
		suffix string
		bytes  int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n >= u.bytes && n%u.bytes == 0 {
			return fmt.Sprintf("%d%s", n/u.bytes, u.suffix)
		}
	}
	return fmt.Sprint(n)
}

func parseEnv(list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	env := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			v, ok = os.LookupEnv(k)
			if !ok {
				continue
			}
		}
		if k == "" {
			return nil, fmt.Errorf("--env %q has no name", kv)
		}
		env[k] = v
	}
	return env, nil
}

// readFileFlags reads every --file SRC[:DST].
func readFileFlags(specs []string) ([]tasks.File, error) {
	var all []tasks.File
	for _, spec := range specs {
		files, err := readFileFlag(spec)
		if err != nil {
			return nil, err
		}
		all = append(all, files...)
	}
	return all, nil
}

// readFileFlag reads SRC[:DST]; a directory is read whole.
func readFileFlag(spec string) ([]tasks.File, error) {
	src, dst, ok := strings.Cut(spec, ":")
	if src == "" {
		return nil, fmt.Errorf("--file %q has no source", spec)
	}
	info, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	if !ok || dst == "" {
		dst = filepath.Base(filepath.Clean(src))
	}
	if !info.IsDir() {
		content, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		return []tasks.File{{Path: dst, Content: content, Mode: tasks.FileMode(info.Mode().Perm())}}, nil
	}
	var files []tasks.File
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		content, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, tasks.File{
			Path:    path.Join(dst, filepath.ToSlash(rel)),
			Content: content,
			Mode:    tasks.FileMode(fi.Mode().Perm()),
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("--file %s: %w", src, err)
	}
	return files, nil
}

// parseQueues reads "a,b" or "a:3,b:1" into queue priorities.
func parseQueues(s string) (map[string]int, error) {
	queues := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, prio, ok := strings.Cut(part, ":")
		p := 1
		if ok {
			n, err := strconv.Atoi(prio)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("--queues: priority %q of %s is not a positive number", prio, name)
			}
			p = n
		}
		queues[name] = p
	}
	if len(queues) == 0 {
		return nil, fmt.Errorf("--queues %q names no queue", s)
	}
	return queues, nil
}

// commandArgs accepts a command after "--", or none when --lang runs a
// program of a language.
func commandArgs(f *requestFlags) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 && f.lang == "" {
			return errors.New("give the command to run after --, or --lang with --code or --file")
		}
		return nil
	}
}

// argsAfterDash returns the command after "--", or all args when there is
// no "--".
func argsAfterDash(cmd *cobra.Command, args []string) []string {
	if i := cmd.ArgsLenAtDash(); i >= 0 {
		return args[i:]
	}
	return args
}
