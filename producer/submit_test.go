package producer_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

type submitBundle struct {
	mr        *miniredis.Miniredis
	redis     *redis.Client
	producer  *producer.Client
	inspector *asynq.Inspector
	ctx       context.Context
}

const testRetention = 2 * time.Hour

func setupSubmit(t *testing.T, hooks ...redis.Hook) *submitBundle {
	t.Helper()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	for _, h := range hooks {
		client.AddHook(h)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &submitBundle{
		mr:        mr,
		redis:     client,
		producer:  producer.New(client, producer.Options{Retention: testRetention}),
		inspector: asynq.NewInspectorFromRedisClient(client),
		ctx:       ctx,
	}
}

// payload is the asynq task's payload of id, as a worker gets it.
func (b *submitBundle) payload(t *testing.T, id string) []byte {
	t.Helper()
	info, err := b.inspector.GetTaskInfo("default", id)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	return info.Payload
}

func largeRequest(id string, fill byte) tasks.ExecRequest {
	return tasks.ExecRequest{
		ID:    id,
		Cmd:   []string{"sh", "-c", "cat; cat big.bin"},
		Stdin: bytes.Repeat([]byte{fill, 0, 0xff}, 1<<20),
		Files: []tasks.File{
			{Path: "run.sh", Content: []byte("echo hi\n"), Mode: 0o755},
			{Path: "big.bin", Content: bytes.Repeat([]byte{fill}, 1<<20)},
		},
	}
}

func TestSubmitStoresLargeInputsBesideTheTask(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	req := largeRequest("big-1", 'a')
	id, err := b.producer.Submit(b.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	payload := b.payload(t, id)
	if len(payload) > 1<<10 {
		t.Errorf("the task's payload is %d bytes with 4 MiB of inputs", len(payload))
	}
	got, err := tasks.DecodeRequest(payload)
	if err != nil {
		t.Fatal(err)
	}
	refs := got.StoredInputs()
	if len(refs) != 2 || refs[0].Field != tasks.StdinField || refs[1].Field != tasks.FileField(1) {
		t.Fatalf("references in the payload: %+v; want stdin and files[1]", refs)
	}
	if !bytes.Equal(got.Files[0].Content, req.Files[0].Content) {
		t.Error("the small file did not stay inline")
	}
	key := tasks.Keys{}.Input(id)
	if ttl := b.mr.TTL(key); ttl != testRetention {
		t.Errorf("inputs kept for %s, want the producer's retention %s", ttl, testRetention)
	}
	stdin, file := b.mr.HGet(key, tasks.StdinField), b.mr.HGet(key, tasks.FileField(1))
	contents := map[string][]byte{tasks.StdinField: []byte(stdin), tasks.FileField(1): []byte(file)}
	if err := got.RestoreInputs(contents); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Stdin, req.Stdin) || !bytes.Equal(got.Files[1].Content, req.Files[1].Content) {
		t.Error("the stored inputs differ from the request's")
	}
	req.Queue = "default" // as Submit fills it in
	digest, err := req.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if bound, _ := b.mr.Get(tasks.Keys{}.Request(id)); bound != digest {
		t.Errorf("the ID is bound to %s, not to the digest of the request with its contents (%s)", bound, digest)
	}
}

func TestSubmitLeavesSmallRequestsInline(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	req := tasks.ExecRequest{ID: "small-1", Cmd: []string{"cat"}, Stdin: bytes.Repeat([]byte("x"), tasks.InlineInputBytes),
		SubmittedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := b.producer.Submit(b.ctx, req); err != nil {
		t.Fatal(err)
	}
	req.Queue = "default"
	want, err := tasks.EncodeRequest(&req)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.payload(t, req.ID); !bytes.Equal(got, want) {
		t.Errorf("payload of a request at the threshold is\n %.200s…\nwant\n %.200s…", got, want)
	}
	if b.mr.Exists(tasks.Keys{}.Input(req.ID)) {
		t.Error("a small request stored inputs beside its task")
	}
}

func TestSubmitBindsTheIDToTheStoredContents(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	first := largeRequest("bound-1", 'a')
	if _, err := b.producer.Submit(b.ctx, first); err != nil {
		t.Fatal(err)
	}
	again := largeRequest("bound-1", 'a')
	if id, err := b.producer.Submit(b.ctx, again); err != nil || id != first.ID {
		t.Errorf("a resubmission with the same contents = %q, %v; want the same ID", id, err)
	}
	other := largeRequest("bound-1", 'a')
	other.Files[1].Content = bytes.Clone(other.Files[1].Content)
	other.Files[1].Content[len(other.Files[1].Content)-1] = 'b'
	if _, err := b.producer.Submit(b.ctx, other); !errors.Is(err, producer.ErrIDConflict) {
		t.Errorf("the same ID with another large file: %v, want ErrIDConflict", err)
	}
	if got := b.mr.HGet(tasks.Keys{}.Input(first.ID), tasks.FileField(1)); got != string(first.Files[1].Content) {
		t.Error("a refused request overwrote the stored inputs")
	}
	if tasksQueued, err := b.inspector.ListPendingTasks("default"); err != nil || len(tasksQueued) != 1 {
		t.Errorf("%d tasks pending, %v; want 1", len(tasksQueued), err)
	}
}

func TestAFailedStoreEnqueuesNothing(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t, failKeys{suffix: ":input"})
	req := largeRequest("unstored-1", 'a')
	if _, err := b.producer.Submit(b.ctx, req); err == nil || !strings.Contains(err.Error(), "store the inputs") {
		t.Fatalf("Submit with the store failing = %v, want its error", err)
	}
	if _, err := b.inspector.GetTaskInfo("default", req.ID); !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Errorf("a task was enqueued although its inputs were not stored: %v", err)
	}
	if _, err := b.mr.ZScore(tasks.Keys{}.Pending(), req.ID); err == nil {
		t.Error("the execution is recorded as pending")
	}
	// Once Redis takes the inputs, the same request goes through.
	healthy := redis.NewClient(&redis.Options{Addr: b.mr.Addr()})
	t.Cleanup(func() { healthy.Close() })
	if _, err := producer.New(healthy, producer.Options{}).Submit(b.ctx, req); err != nil {
		t.Errorf("the same request after the failure: %v", err)
	}
	if _, err := b.inspector.GetTaskInfo("default", req.ID); err != nil {
		t.Errorf("the task after the second submit: %v", err)
	}
}

func TestSubmitRefusesReferencesFromItsCaller(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	sum := strings.Repeat("0", 64)
	for _, req := range []tasks.ExecRequest{
		{Cmd: []string{"cat"}, StdinStored: &tasks.StoredInput{Bytes: 1, SHA256: sum}},
		{Cmd: []string{"cat"}, Files: []tasks.File{{Path: "f", Stored: &tasks.StoredInput{Bytes: 1, SHA256: sum}}}},
	} {
		var verr *tasks.ValidationError
		if _, err := b.producer.Submit(b.ctx, req); !errors.As(err, &verr) || !strings.Contains(err.Error(), "give Submit the bytes") {
			t.Errorf("Submit of a request with a reference: %v, want a *tasks.ValidationError", err)
		}
	}
}

// failKeys fails every command, and every pipeline or transaction with a
// command, that names a key ending with suffix.
type failKeys struct{ suffix string }

func (f failKeys) names(cmd redis.Cmder) bool {
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && strings.HasSuffix(s, f.suffix) {
			return true
		}
	}
	return false
}

var errInjected = errors.New("injected failure")

func (f failKeys) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f failKeys) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.names(cmd) {
			cmd.SetErr(errInjected)
			return errInjected
		}
		return next(ctx, cmd)
	}
}

func (f failKeys) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if f.names(cmd) {
				for _, c := range cmds {
					c.SetErr(errInjected)
				}
				return errInjected
			}
		}
		return next(ctx, cmds)
	}
}

// SubmitCreated tells a new binding from a replay; the owner is part of
// the request, and kept under its key.
func TestSubmitCreated(t *testing.T) {
	t.Parallel()
	b := setupSubmit(t)
	req := tasks.ExecRequest{ID: "owned", Cmd: []string{"true"}, Owner: "0123456789abcdef"}
	id, created, err := b.producer.SubmitCreated(b.ctx, req)
	if err != nil || id != "owned" || !created {
		t.Fatalf("first: %q %v %v", id, created, err)
	}
	if _, created, err := b.producer.SubmitCreated(b.ctx, req); err != nil || created {
		t.Errorf("the same again: created %v, %v; want a replay", created, err)
	}
	if got, _ := b.mr.Get(tasks.Keys{}.Owner("owned")); got != req.Owner {
		t.Errorf("owner key %q", got)
	}
	other := req
	other.Owner = "fedcba9876543210"
	if _, _, err := b.producer.SubmitCreated(b.ctx, other); !errors.Is(err, producer.ErrIDConflict) {
		t.Errorf("the same request from another owner: %v, want ErrIDConflict", err)
	}
	got, err := tasks.DecodeRequest(b.payload(t, "owned"))
	if err != nil || got.Owner != req.Owner {
		t.Errorf("the payload's owner %+v, %v", got, err)
	}
}
