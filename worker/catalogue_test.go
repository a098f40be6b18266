package worker

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/execq/execq/tasks"
)

func TestDefaultCatalogue(t *testing.T) {
	t.Parallel()
	c := DefaultCatalogue()
	if got := strings.Join(c.Names(), " "); got != "python node c sh" {
		t.Errorf("languages %q, want python node c sh", got)
	}
	policy := newImagePolicy(DefaultImage, nil)
	for _, l := range c.Languages() {
		if err := policy.check(l.Image); err != nil {
			t.Errorf("%s: %v", l.Name, err)
		}
	}
	py, _ := c.Lookup("python")
	if py.Env["PYTHONUNBUFFERED"] != "1" {
		t.Errorf("python's env %v, want PYTHONUNBUFFERED=1", py.Env)
	}
	// What MarshalJSON writes, ReadCatalogue reads back.
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ReadCatalogue(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if b2, _ := json.Marshal(again); string(b2) != string(b) {
		t.Errorf("catalogue changed through its JSON:\n%s\n%s", b, b2)
	}
}

func TestReadCatalogueRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, json, want string }{
		{"unknown field", `{"languages":[{"name":"r","image":"r:4","file":"main.r","run":["Rscript","main.r"],"compiler":["x"]}]}`, `unknown field "compiler"`},
		{"no language", `{"languages":[]}`, "names no language"},
		{"twice", `{"languages":[{"name":"r","image":"r:4","file":"m.r","run":["R"]},{"name":"r","image":"r:4","file":"m.r","run":["R"]}]}`, "r is given twice"},
		{"no run step", `{"languages":[{"name":"r","image":"r:4","file":"m.r"}]}`, "run is empty"},
		{"file outside the workspace", `{"languages":[{"name":"r","image":"r:4","file":"../m.r","run":["R"]}]}`, `contains ".."`},
		{"absolute file", `{"languages":[{"name":"r","image":"r:4","file":"/etc/m.r","run":["R"]}]}`, "is absolute"},
		{"bad name", `{"languages":[{"name":"R lang","image":"r:4","file":"m.r","run":["R"]}]}`, "is not a language name"},
		{"bad image", `{"languages":[{"name":"r","image":"Not An Image","file":"m.r","run":["R"]}]}`, "not a valid image name"},
		{"bad env", `{"languages":[{"name":"r","image":"r:4","file":"m.r","run":["R"],"env":{"A=B":"c"}}]}`, "not a valid variable name"},
	}
	for _, c := range cases {
		_, err := ReadCatalogue(strings.NewReader(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ReadCatalogue = %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestResolveEnvironment(t *testing.T) {
	t.Parallel()
	c := DefaultCatalogue()
	req := &tasks.ExecRequest{Language: "python", Code: "print(1)", Env: map[string]string{"PYTHONUNBUFFERED": "0", "X": "1"}}
	steps, err := c.resolve(req)
	if err != nil {
		t.Fatal(err)
	}
	if req.Image != "execq-python:latest" || req.Env["PYTHONUNBUFFERED"] != "0" || req.Env["X"] != "1" {
		t.Errorf("image %q env %v; want the language's image and the request's env over the language's", req.Image, req.Env)
	}
	if len(steps) != 1 || strings.Join(steps[0].cmd, " ") != "python3 main.py" || steps[0].name != tasks.StepRun {
		t.Errorf("steps %+v, want python3 main.py", steps)
	}
	if len(req.Files) != 1 || req.Files[0].Path != "main.py" || string(req.Files[0].Content) != "print(1)" {
		t.Errorf("files %+v, want the code as main.py", req.Files)
	}
	creq := &tasks.ExecRequest{Language: "c", Code: "int main(void) { return 0; }"}
	steps, err = c.resolve(creq)
	if err != nil || len(steps) != 2 || steps[0].name != tasks.StepCompile || steps[1].name != tasks.StepRun {
		t.Errorf("c: steps %+v, %v; want compile then run", steps, err)
	}
}
