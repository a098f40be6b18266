package tasks_test

import (
	"strings"
	"testing"

	"github.com/execq/execq/tasks"
)

func TestKeysOfAnExecutionShareAHashTag(t *testing.T) {
	t.Parallel()
	for _, k := range []tasks.Keys{{}, {Prefix: "other"}} {
		prefix := k.Prefix
		if prefix == "" {
			prefix = tasks.DefaultKeyPrefix
		}
		const id = "job-1"
		keys := map[string]string{
			"stream":   k.Stream(id),
			"result":   k.Result(id),
			"cancel":   k.Cancel(id),
			"attempts": k.Attempts(id),
			"queue":    k.Queue(id),
			"request":  k.Request(id),
			"input":    k.Input(id),
		}
		seen := map[string]string{}
		for name, key := range keys {
			if !strings.HasPrefix(key, prefix+":") {
				t.Errorf("%s key %q lacks the prefix %q", name, key, prefix)
			}
			// Redis Cluster hashes the part between the first { and the
			// next }: it must be the ID alone.
			open := strings.IndexByte(key, '{')
			end := strings.IndexByte(key[open+1:], '}')
			if open < 0 || end < 0 || key[open+1:open+1+end] != id {
				t.Errorf("%s key %q does not carry the hash tag {%s}", name, key, id)
			}
			if other, dup := seen[key]; dup {
				t.Errorf("the %s and %s keys are both %q", name, other, key)
			}
			seen[key] = name
		}
		if k.Stream("a") == k.Stream("b") || k.Result("a") == k.Result("b") {
			t.Error("two executions share a key")
		}
		for _, key := range []string{k.Workers(), k.CancelChannel()} {
			if !strings.HasPrefix(key, prefix+":") {
				t.Errorf("key %q lacks the prefix %q", key, prefix)
			}
		}
	}
	if tasks.DefaultKeyPrefix != "execq" {
		t.Errorf("DefaultKeyPrefix = %q, want execq", tasks.DefaultKeyPrefix)
	}
	if got := (tasks.Keys{}).Result("x"); got != "execq:{x}:result" {
		t.Errorf("Result key %q, want execq:{x}:result", got)
	}
}
