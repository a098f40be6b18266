package apitest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/execq/execq/tasks"
)

// The document loads as OpenAPI 3.1 and is valid.
func TestDocumentLoads(t *testing.T) {
	t.Parallel()
	if _, err := NewValidator(); err != nil {
		t.Fatal(err)
	}
}

// The event checks find what is wrong with an event.
func TestEventChecks(t *testing.T) {
	t.Parallel()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	good := "id: 1-0\nevent: stdout\ndata: {\"text\":\"hi\\n\"}\n\n: ping\n\nid: 2-0\nevent: exit\ndata: {\"status\":\"succeeded\",\"exitCode\":0}\n\n"
	if errs := v.checkSSE(good, true); len(errs) > 0 {
		t.Errorf("checkSSE(good) = %v", errs)
	}
	for _, bad := range []string{
		"id: x\nevent: stdout\ndata: {\"text\":\"hi\"}\n\n",
		"id: 1-0\nevent: nope\ndata: {}\n\n",
		"id: 1-0\nevent: stdout\ndata: {\"text\":\"a\",\"base64\":\"YQ==\"}\n\n",
		"id: 1-0\nevent: exit\ndata: {\"status\":\"x\"}\n\n",
		"event: stdout\ndata: {\"text\":\"a\"}\n\n",
	} {
		if errs := v.checkSSE(bad, true); len(errs) == 0 {
			t.Errorf("checkSSE(%q) found nothing wrong", bad)
		}
	}
	if errs := v.checkNDJSON("{\"id\":\"1-0\",\"event\":\"stdout\",\"data\":{\"base64\":\"/w==\"}}\n", true); len(errs) > 0 {
		t.Errorf("checkNDJSON(good) = %v", errs)
	}
	if errs := v.checkNDJSON("{\"id\":\"1-0\",\"event\":\"stdout\",\"data\":{}}\n", true); len(errs) == 0 || !strings.Contains(errs[0].Error(), "OutputData") {
		t.Errorf("checkNDJSON(empty output) = %v, want an OutputData error", errs)
	}
}

// The document's request schemas name every JSON field of tasks.ExecRequest,
// tasks.SessionRequest and tasks.File and nothing else (besides the text
// forms of the inputs and the durations in milliseconds), and the schema of
// a session's state every field of tasks.SessionInfo (and idleMs), so that
// a field added to one is added to the document too.
func TestDocumentHasTheRequestsFields(t *testing.T) {
	t.Parallel()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	check := func(schema string, typ reflect.Type, extra ...string) {
		want := map[string]bool{}
		for _, e := range extra {
			want[e] = true
		}
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" {
				want[name] = true
			}
		}
		got := map[string]bool{}
		for name := range v.doc.Components.Schemas[schema].Value.Properties {
			got[name] = true
		}
		for name := range want {
			if !got[name] {
				t.Errorf("schema %s lacks the field %q", schema, name)
			}
		}
		for name := range got {
			if !want[name] {
				t.Errorf("schema %s has the field %q, which %s does not", schema, name, typ)
			}
		}
	}
	check("ExecRequest", reflect.TypeFor[tasks.ExecRequest](), "timeoutMs", "stdinText")
	check("SessionRequest", reflect.TypeFor[tasks.SessionRequest](), "idleTimeoutMs", "lifetimeMs")
	check("File", reflect.TypeFor[tasks.File](), "text")
	check("SessionInfo", reflect.TypeFor[tasks.SessionInfo](), "idleTimeoutMs", "lifetimeMs", "idleMs")
}
