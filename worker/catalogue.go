package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/execq/execq/tasks"
)

// Language is one entry of a language catalogue: how a program of the
// language runs. Its steps are argvs, never shell text: a request's code
// goes into File, never into a command line.
type Language struct {
	// Name is what requests give as their language.
	Name string `json:"name"`
	// Image is the sandbox image of its programs. It must be on the
	// worker's allow-list.
	Image string `json:"image"`
	// File is where a request's code is written, relative to /workspace.
	File string `json:"file"`
	// Compile, when set, runs before Run in the same sandbox, as the same
	// user; a compile step that fails ends the execution (its result's
	// step is "compile") and Run never runs.
	Compile []string `json:"compile,omitempty"`
	// Run runs the program.
	Run []string `json:"run"`
	// Env is added to the environment of every step, under the request's
	// own (a request may override it).
	Env map[string]string `json:"env,omitempty"`
}

// Catalogue maps language names to how their programs run. The zero
// value holds no language; DefaultCatalogue is the built-in one.
type Catalogue struct {
	langs []Language // in the order given
}

// catalogueFile is the JSON form of a catalogue (worker --languages FILE).
type catalogueFile struct {
	Languages []Language `json:"languages"`
}

// DefaultCatalogue is the built-in catalogue, of the images execq builds:
//
//	python  execq-python:latest  main.py  python3 main.py (PYTHONUNBUFFERED=1)
//	node    execq-node:latest    main.js  node main.js
//	c       execq-c:latest       main.c   gcc -O2 -Wall -o /tmp/main main.c, then stdbuf -oL /tmp/main
//	sh      execq-sandbox:latest main.sh  sh main.sh
//
// Output is live where the language allows it: Python is told not to
// buffer (PYTHONUNBUFFERED=1); Node writes to pipes synchronously on
// Linux, so it needs nothing; a C program's stdout is line-buffered by
// stdbuf (a program that sets its own buffering keeps it); sh never
// buffers. The C binary goes to /tmp, not /workspace, so that collect
// globs do not return it; the reset empties /tmp like /workspace.
func DefaultCatalogue() *Catalogue {
	c, err := NewCatalogue(
		Language{Name: "python", Image: "execq-python:latest", File: "main.py",
			Run: []string{"python3", "main.py"}, Env: map[string]string{"PYTHONUNBUFFERED": "1"}},
		Language{Name: "node", Image: "execq-node:latest", File: "main.js",
			Run: []string{"node", "main.js"}},
		Language{Name: "c", Image: "execq-c:latest", File: "main.c",
			Compile: []string{"gcc", "-O2", "-Wall", "-o", "/tmp/main", "main.c"},
			Run:     []string{"stdbuf", "-oL", "/tmp/main"}},
		Language{Name: "sh", Image: DefaultImage, File: "main.sh",
			Run: []string{"sh", "main.sh"}},
	)
	if err != nil {
		panic(err)
	}
	return c
}

// NewCatalogue returns a catalogue of langs, checked: valid and unique
// names, an image, a source path within /workspace, a run step, valid
// environment names.
func NewCatalogue(langs ...Language) (*Catalogue, error) {
	var errs []error
	seen := map[string]bool{}
	for i, l := range langs {
		if err := l.check(); err != nil {
			errs = append(errs, fmt.Errorf("languages[%d]: %w", i, err))
		}
		if seen[l.Name] {
			errs = append(errs, fmt.Errorf("languages[%d]: %s is given twice", i, l.Name))
		}
		seen[l.Name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("language catalogue: %w", err)
	}
	c := &Catalogue{}
	for _, l := range langs {
		c.langs = append(c.langs, l.clone())
	}
	return c, nil
}

func (l Language) check() error {
	var errs []error
	if !tasks.ValidLanguageName(l.Name) {
		errs = append(errs, fmt.Errorf("name %q is not a language name (lower-case letters, digits and ._+-, at most %d)", l.Name, tasks.MaxLanguageName))
	}
	if _, _, err := splitRef(l.Image); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", l.Name, err))
	}
	if _, err := tasks.WorkspacePath(l.File); err != nil {
		errs = append(errs, fmt.Errorf("%s: file: %w", l.Name, err))
	}
	if len(l.Run) == 0 || l.Run[0] == "" {
		errs = append(errs, fmt.Errorf("%s: run is empty: give the argv that runs the program", l.Name))
	}
	if len(l.Compile) > 0 && l.Compile[0] == "" {
		errs = append(errs, fmt.Errorf("%s: compile[0] is empty", l.Name))
	}
	probe := tasks.ExecRequest{ID: "x", Cmd: []string{"x"}, Env: l.Env}
	if err := probe.Check(); err != nil {
		errs = append(errs, fmt.Errorf("%s: env: %w", l.Name, err))
	}
	return errors.Join(errs...)
}

func (l Language) clone() Language {
	l.Compile = slices.Clone(l.Compile)
	l.Run = slices.Clone(l.Run)
	if l.Env != nil {
		env := make(map[string]string, len(l.Env))
		for k, v := range l.Env {
			env[k] = v
		}
		l.Env = env
	}
	return l
}

// ReadCatalogue reads a catalogue's JSON: {"languages": [{"name": …,
// "image": …, "file": …, "compile": [...], "run": [...], "env": {…}}, …]}.
// Unknown fields are refused, so that a misspelt one is not ignored.
func ReadCatalogue(r io.Reader) (*Catalogue, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var f catalogueFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("language catalogue: %w", err)
	}
	if len(f.Languages) == 0 {
		return nil, errors.New("language catalogue: it names no language")
	}
	return NewCatalogue(f.Languages...)
}

// LoadCatalogue reads the catalogue file at path (worker --languages).
func LoadCatalogue(path string) (*Catalogue, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("language catalogue: %w", err)
	}
	c, err := ReadCatalogue(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// MarshalJSON writes the catalogue as ReadCatalogue reads it.
func (c *Catalogue) MarshalJSON() ([]byte, error) {
	return json.Marshal(catalogueFile{Languages: c.Languages()})
}

// Languages returns the catalogue's languages, in its order.
func (c *Catalogue) Languages() []Language {
	out := make([]Language, len(c.langs))
	for i, l := range c.langs {
		out[i] = l.clone()
	}
	return out
}

// Lookup returns the language called name.
func (c *Catalogue) Lookup(name string) (Language, bool) {
	for _, l := range c.langs {
		if l.Name == name {
			return l.clone(), true
		}
	}
	return Language{}, false
}

// Names lists the catalogue's language names, in its order.
func (c *Catalogue) Names() []string {
	names := make([]string, len(c.langs))
	for i, l := range c.langs {
		names[i] = l.Name
	}
	return names
}

// step is one command of an execution: a language's compile or run step,
// or a request's own command.
type step struct {
	name tasks.Step // "" for a request without a language
	cmd  []string
}

// resolve turns a request that names a language into one the sandbox can
// run: the language's image, its environment under the request's, the
// code as its source file, and the steps. A request without a language
// runs its own command as one step. The errors are the request's fault
// (a *tasks.ValidationError).
func (c *Catalogue) resolve(req *tasks.ExecRequest) ([]step, error) {
	if req.Language == "" {
		return []step{{cmd: req.Cmd}}, nil
	}
	lang, ok := c.Lookup(req.Language)
	if !ok {
		return nil, &tasks.ValidationError{Problems: []string{fmt.Sprintf(
			"language %q is not in this worker's catalogue; known: %s", req.Language, strings.Join(c.Names(), ", "))}}
	}
	req.Image = lang.Image
	req.Env = underEnv(lang.Env, req.Env)
	if len(req.Cmd) > 0 {
		return []step{{name: tasks.StepRun, cmd: req.Cmd}}, nil
	}
	source, _ := tasks.WorkspacePath(lang.File)
	given := slices.ContainsFunc(req.Files, func(f tasks.File) bool {
		p, err := tasks.WorkspacePath(f.Path)
		return err == nil && p == source
	})
	switch {
	case req.Code != "" && given:
		return nil, &tasks.ValidationError{Problems: []string{fmt.Sprintf(
			"code and a file %s both given: %s is where language %s puts the code", source, source, lang.Name)}}
	case req.Code != "":
		req.Files = append(req.Files, tasks.File{Path: source, Content: []byte(req.Code), Mode: 0o644})
	case !given:
		return nil, &tasks.ValidationError{Problems: []string{fmt.Sprintf(
			"language %s runs %s: give its code, a file %s, or a cmd", lang.Name, source, source)}}
	}
	var steps []step
	if len(lang.Compile) > 0 {
		steps = append(steps, step{name: tasks.StepCompile, cmd: lang.Compile})
	}
	return append(steps, step{name: tasks.StepRun, cmd: lang.Run}), nil
}

// underEnv returns env with base's variables under it (env's win); env
// itself when base is empty.
func underEnv(base, env map[string]string) map[string]string {
	if len(base) == 0 {
		return env
	}
	out := make(map[string]string, len(base)+len(env))
	maps.Copy(out, base)
	maps.Copy(out, env)
	return out
}
