package stream_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/stream"
	"github.com/execq/execq/tasks"
)

var errAppend = errors.New("redis is down")

// appender records what it is given; it fails the first failures calls,
// or every call when failures is negative.
type appender struct {
	mu       sync.Mutex
	batches  [][]rdb.Entry
	calls    int
	failures int
	appended chan struct{} // gets a value after each successful append
	// gate, when set before the first write, holds every append until it
	// is closed: the append stays in flight for as long as a test needs.
	gate chan struct{}
}

func newAppender(failures int) *appender {
	return &appender{failures: failures, appended: make(chan struct{}, 1000)}
}

func (a *appender) AppendEvents(ctx context.Context, id string, entries ...rdb.Entry) error {
	if a.gate != nil {
		<-a.gate
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.failures < 0 || a.calls <= a.failures {
		return errAppend
	}
	batch := make([]rdb.Entry, len(entries))
	for i, e := range entries {
		batch[i] = rdb.Entry{Type: e.Type, Data: bytes.Clone(e.Data)}
	}
	a.batches = append(a.batches, batch)
	select {
	case a.appended <- struct{}{}:
	default:
	}
	return nil
}

func (a *appender) entries() []rdb.Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	var all []rdb.Entry
	for _, b := range a.batches {
		all = append(all, b...)
	}
	return all
}

func (a *appender) callCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

// streamed joins the entries of one type.
func streamed(entries []rdb.Entry, typ tasks.EventType) []byte {
	var b []byte
	for _, e := range entries {
		if e.Type == typ {
			b = append(b, e.Data...)
		}
	}
	return b
}

type testBundle struct {
	app *appender
	w   *stream.Writer
}

// setup starts a Writer on a fake appender; a linger of an hour makes
// coalescing depend only on ChunkBytes and Close.
func setup(t *testing.T, failures int, cfg stream.Config) *testBundle {
	t.Helper()
	app := newAppender(failures)
	ctx, cancel := context.WithCancel(context.Background())
	w := stream.NewWriter(ctx, app, "e1", cfg)
	t.Cleanup(func() {
		cancel()
		_ = w.Close() // idempotent; ends the sender goroutine
	})
	return &testBundle{app: app, w: w}
}

func TestTinyWritesAreCoalesced(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, stream.Config{Linger: time.Hour})
	gate := make(chan struct{})
	b.app.gate = gate
	var want []byte
	for i := range 1000 {
		p := []byte{'a' + byte(i%26)}
		want = append(want, p...)
		if n, err := b.w.Stdout().Write(p); n != 1 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	close(gate)
	if err := b.w.Close(); err != nil {
		t.Fatal(err)
	}
	entries := b.app.entries()
	// The first goes at once; the rest gather while it is in flight.
	if len(entries) > 2 {
		t.Errorf("1000 one-byte writes became %d entries, want 2 at most", len(entries))
	}
	if got := streamed(entries, tasks.EventStdout); !bytes.Equal(got, want) {
		t.Errorf("streamed %q, want %q", got, want)
	}
}

func TestLingerSendsWithoutClose(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, stream.Config{Linger: time.Millisecond})
	if _, err := b.w.Stdout().Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// Nothing but the linger timer sends it.
	select {
	case <-b.app.appended:
	case <-time.After(30 * time.Second):
		t.Fatal("output was not sent after its linger")
	}
	if got := streamed(b.app.entries(), tasks.EventStdout); string(got) != "hello" {
		t.Errorf("streamed %q, want hello", got)
	}
}

func TestInterleavingIsKept(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, stream.Config{Linger: time.Hour})
	writes := []struct {
		typ  tasks.EventType
		data string
	}{
		{tasks.EventStdout, "o1"}, {tasks.EventStdout, "o2"},
		{tasks.EventStderr, "e1"},
		{tasks.EventStdout, "o3"},
		{tasks.EventStderr, "e2"}, {tasks.EventStderr, "e3"},
		{tasks.EventStdout, "o4"},
	}
	for _, wr := range writes {
		out := b.w.Stdout()
		if wr.typ == tasks.EventStderr {
			out = b.w.Stderr()
		}
		if _, err := out.Write([]byte(wr.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.w.Close(); err != nil {
		t.Fatal(err)
	}
	want := []rdb.Entry{
		{Type: tasks.EventStdout, Data: []byte("o1o2")},
		{Type: tasks.EventStderr, Data: []byte("e1")},
		{Type: tasks.EventStdout, Data: []byte("o3")},
		{Type: tasks.EventStderr, Data: []byte("e2e3")},
		{Type: tasks.EventStdout, Data: []byte("o4")},
	}
	// Entries of one stream may be split where appends were; merged, they
	// are the runs written.
	got := mergeRuns(b.app.entries())
	if !sameEntries(got, want) {
		t.Errorf("entries %s, want %s", show(got), show(want))
	}
}

// mergeRuns joins consecutive entries of the same type.
func mergeRuns(entries []rdb.Entry) []rdb.Entry {
	var out []rdb.Entry
	for _, e := range entries {
		if n := len(out); n > 0 && out[n-1].Type == e.Type {
			out[n-1].Data = append(append([]byte(nil), out[n-1].Data...), e.Data...)
			continue
		}
		out = append(out, e)
	}
	return out
}

func sameEntries(a, b []rdb.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

func show(entries []rdb.Entry) string {
	var b bytes.Buffer
	for _, e := range entries {
		b.WriteString(string(e.Type) + ":" + string(e.Data) + " ")
	}
	return b.String()
}

func TestBinaryOutputIsByteExact(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, stream.Config{Linger: time.Millisecond, ChunkBytes: 7})
	var want []byte
	buf := make([]byte, 13)
	for round := range 100 {
		for i := range buf {
			buf[i] = byte(round*13 + i)
		}
		want = append(want, buf...)
		// The caller reuses buf: the writer must have copied it.
		if _, err := b.w.Stdout().Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := streamed(b.app.entries(), tasks.EventStdout); !bytes.Equal(got, want) {
		t.Errorf("streamed bytes differ from the written ones:\n got %x\nwant %x", got, want)
	}
	if got := b.w.StdoutOutput(); !bytes.Equal(got.Data, want) || got.Total != int64(len(want)) || got.Truncated {
		t.Errorf("kept %d bytes (total %d, truncated %v), want the %d written", len(got.Data), got.Total, got.Truncated, len(want))
	}
}

func TestEntriesNeverExceedChunkBytes(t *testing.T) {
	t.Parallel()
	const chunk = 100
	b := setup(t, 0, stream.Config{Linger: time.Hour, ChunkBytes: chunk})
	var want []byte
	for _, n := range []int{1, 99, 100, 101, 250, 3, 1000, 7} {
		p := bytes.Repeat([]byte{byte('a' + n%26)}, n)
		want = append(want, p...)
		if _, err := b.w.Stdout().Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.w.Close(); err != nil {
		t.Fatal(err)
	}
	entries := b.app.entries()
	for i, e := range entries {
		if len(e.Data) > chunk || len(e.Data) == 0 {
			t.Errorf("entry %d holds %d bytes; want 1 to %d", i, len(e.Data), chunk)
		}
	}
	if got := streamed(entries, tasks.EventStdout); !bytes.Equal(got, want) {
		t.Errorf("streamed %d bytes, want %d, in order", len(got), len(want))
	}
}

func TestOutputCap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		writes    []int // sizes written to stdout
		cap       int64
		kept      int
		truncated bool
	}{
		{"under", []int{10, 20}, 100, 30, false},
		{"exactly", []int{60, 40}, 100, 100, false},
		{"one over", []int{100, 1}, 100, 100, true},
		{"a write across the cap", []int{90, 20, 5}, 100, 100, true},
		{"one big write", []int{1000}, 100, 100, true},
		{"empty writes", []int{0, 100, 0}, 100, 100, false},
	}
	for _, c := range cases {
		b := setup(t, 0, stream.Config{Linger: time.Hour, MaxOutputBytes: c.cap, ChunkBytes: 16})
		var all []byte
		total := 0
		for i, n := range c.writes {
			p := bytes.Repeat([]byte{byte('a' + i)}, n)
			all = append(all, p...)
			total += n
			if k, err := b.w.Stdout().Write(p); k != n || err != nil {
				t.Errorf("%s: Write(%d bytes) = %d, %v; the command must never see a short write", c.name, n, k, err)
			}
		}
		if _, err := b.w.Stderr().Write([]byte("err")); err != nil {
			t.Fatal(err)
		}
		if err := b.w.Close(); err != nil {
			t.Fatal(err)
		}
		out := b.w.StdoutOutput()
		if !bytes.Equal(out.Data, all[:c.kept]) || out.Total != int64(total) || out.Truncated != c.truncated {
			t.Errorf("%s: kept %d bytes, total %d, truncated %v; want %d, %d, %v",
				c.name, len(out.Data), out.Total, out.Truncated, c.kept, total, c.truncated)
		}
		if got := streamed(b.app.entries(), tasks.EventStdout); !bytes.Equal(got, all[:c.kept]) {
			t.Errorf("%s: streamed %d bytes, want the %d kept", c.name, len(got), c.kept)
		}
		// The cap is per stream: stderr is untouched by stdout's.
		if errOut := b.w.StderrOutput(); string(errOut.Data) != "err" || errOut.Total != 3 || errOut.Truncated {
			t.Errorf("%s: stderr %+v", c.name, errOut)
		}
	}
}

func TestOutputReturnsACopy(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, stream.Config{Linger: time.Hour})
	if _, err := b.w.Stdout().Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	out := b.w.StdoutOutput()
	out.Data[0] = 'X'
	if _, err := b.w.Stdout().Write([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if got := string(b.w.StdoutOutput().Data); got != "abcd" {
		t.Errorf("kept output %q after the caller changed its copy, want abcd", got)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, stream.Config{Linger: time.Hour})
	if _, err := b.w.Stdout().Write(make([]byte, 1<<20+1)); err != nil {
		t.Fatal(err)
	}
	if err := b.w.Close(); err != nil {
		t.Fatal(err)
	}
	if out := b.w.StdoutOutput(); len(out.Data) != 1<<20 || !out.Truncated {
		t.Errorf("with the default cap: kept %d, truncated %v; want 1 MiB, true", len(out.Data), out.Truncated)
	}
	for i, e := range b.app.entries() {
		if len(e.Data) > 16<<10 {
			t.Errorf("entry %d holds %d bytes, above the default 16 KiB", i, len(e.Data))
		}
	}
}

func TestRetriesLoseNothing(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var errs []error
	b := setup(t, 3, stream.Config{
		Linger:   time.Millisecond,
		RetryFor: time.Minute,
		OnAppend: func(d time.Duration, entries int, err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		},
	})
	var want []byte
	for i := range 50 {
		p := []byte{byte(i)}
		want = append(want, p...)
		if _, err := b.w.Stdout().Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.w.Close(); err != nil {
		t.Fatalf("Close = %v, want nil after the appender recovered", err)
	}
	entries := b.app.entries()
	if got := streamed(entries, tasks.EventStdout); !bytes.Equal(got, want) {
		t.Errorf("streamed %x, want %x (nothing lost, nothing twice, in order)", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed != 3 || len(errs) != b.app.callCount() {
		t.Errorf("OnAppend saw %d failures in %d calls; want 3 in %d", failed, len(errs), b.app.callCount())
	}
}

func TestAppenderThatAlwaysFails(t *testing.T) {
	t.Parallel()
	b := setup(t, -1, stream.Config{Linger: time.Hour, RetryFor: 200 * time.Millisecond})
	if _, err := b.w.Stdout().Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	err := b.w.Close()
	if !errors.Is(err, errAppend) {
		t.Fatalf("Close = %v, want an error wrapping the appender's", err)
	}
	if calls := b.app.callCount(); calls < 2 {
		t.Errorf("the append was tried %d times; want it retried", calls)
	}
	// What was kept for the result does not depend on the stream.
	if out := b.w.StdoutOutput(); string(out.Data) != "lost" || out.Total != 4 {
		t.Errorf("kept %+v", out)
	}
	if err2 := b.w.Close(); !errors.Is(err2, errAppend) {
		t.Errorf("second Close = %v, want the same error", err2)
	}
}

func TestCanceledContextStopsRetrying(t *testing.T) {
	t.Parallel()
	app := newAppender(-1)
	ctx, cancel := context.WithCancel(context.Background())
	// RetryFor is far longer than the test: only the context can end it.
	w := stream.NewWriter(ctx, app, "e1", stream.Config{Linger: time.Hour, RetryFor: time.Hour})
	if _, err := w.Stdout().Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := w.Close(); err == nil {
		t.Error("Close = nil after every append failed")
	}
}

func TestWritesAfterCloseAreCountedNotKept(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, stream.Config{Linger: time.Hour})
	if _, err := b.w.Stdout().Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := b.w.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.w.Stdout().Write([]byte("after")); n != 5 || err != nil {
		t.Errorf("Write after Close = %d, %v; want 5, nil", n, err)
	}
	if _, err := b.w.Stderr().Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if out := b.w.StdoutOutput(); string(out.Data) != "before" || out.Total != 11 {
		t.Errorf("stdout kept %q, total %d; want before, 11", out.Data, out.Total)
	}
	if out := b.w.StderrOutput(); len(out.Data) != 0 || out.Total != 4 {
		t.Errorf("stderr kept %q, total %d; want nothing, 4", out.Data, out.Total)
	}
	if got := streamed(b.app.entries(), tasks.EventStdout); string(got) != "before" {
		t.Errorf("streamed %q, want before", got)
	}
	if got := streamed(b.app.entries(), tasks.EventStderr); len(got) != 0 {
		t.Errorf("streamed stderr %q after Close", got)
	}
}

func TestCloseWithNothingWritten(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, stream.Config{})
	if err := b.w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(b.app.entries()); n != 0 {
		t.Errorf("%d entries appended for no output", n)
	}
}

// The demultiplexer writes from one goroutine while the linger timer
// flushes from another and the result reads the output: -race checks it.
func TestConcurrentFlushAndRead(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, stream.Config{Linger: 50 * time.Microsecond, ChunkBytes: 64})
	var want bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			p := []byte{byte(i), byte(i >> 8)}
			want.Write(p)
			out := b.w.Stdout()
			if i%3 == 0 {
				out = b.w.Stderr()
			}
			_, _ = out.Write(p)
		}
	}()
	for {
		select {
		case <-done:
		default:
			_ = b.w.StdoutOutput()
			continue
		}
		break
	}
	if err := b.w.Close(); err != nil {
		t.Fatal(err)
	}
	entries := b.app.entries()
	var got bytes.Buffer
	for _, e := range entries {
		got.Write(e.Data)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("the entries, joined, differ from what was written (%d bytes vs %d)", got.Len(), want.Len())
	}
}
