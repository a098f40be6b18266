package rdb_test

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/execq/execq/tasks"
)

func TestPutInputsStoresAllOfThemForTheRetention(t *testing.T) {
	t.Parallel()
	b := setup(t)
	big := bytes.Repeat([]byte{0, 0xff, '\n'}, 100<<10)
	inputs := map[string][]byte{tasks.StdinField: big, tasks.FileField(3): []byte("\x00binary\xfe"), tasks.FileField(0): {}}
	ok, err := b.store.PutInputs(b.ctx, "e1", inputs)
	if err != nil || !ok {
		t.Fatalf("PutInputs = %v, %v", ok, err)
	}
	if ttl := b.mr.TTL(b.keys.Input("e1")); ttl != retention {
		t.Errorf("inputs kept for %s, want the retention %s", ttl, retention)
	}
	got, err := b.store.Inputs(b.ctx, "e1", []string{tasks.StdinField, tasks.FileField(3), tasks.FileField(0), tasks.FileField(1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !bytes.Equal(got[tasks.StdinField], big) || !reflect.DeepEqual(got[tasks.FileField(3)], inputs[tasks.FileField(3)]) {
		t.Errorf("Inputs read %d fields back, not byte for byte", len(got))
	}
	if v, ok := got[tasks.FileField(0)]; !ok || len(v) != 0 {
		t.Errorf("an empty input read back as %q, present %v", v, ok)
	}
	if _, ok := got[tasks.FileField(1)]; ok {
		t.Error("a field never stored reads as present")
	}

	b.mr.FastForward(retention + time.Second)
	got, err = b.store.Inputs(b.ctx, "e1", []string{tasks.StdinField})
	if err != nil || len(got) != 0 {
		t.Errorf("after the retention: %d fields, %v; want none", len(got), err)
	}
}

func TestTheResultDeletesTheInputsAndKeepsThemAway(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if _, err := b.store.PutInputs(b.ctx, "e1", map[string][]byte{tasks.StdinField: []byte("in")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Finalize(b.ctx, &tasks.Result{ExecutionID: "e1", Status: tasks.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if b.mr.Exists(b.keys.Input("e1")) {
		t.Error("the inputs outlive the result")
	}
	ok, err := b.store.PutInputs(b.ctx, "e1", map[string][]byte{tasks.StdinField: []byte("in")})
	if err != nil || ok || b.mr.Exists(b.keys.Input("e1")) {
		t.Errorf("PutInputs after the result = %v, %v, key there %v; want nothing stored", ok, err, b.mr.Exists(b.keys.Input("e1")))
	}
}
