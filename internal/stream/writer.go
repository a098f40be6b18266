// Package stream turns a command's stdout and stderr into stream events:
// coalesced, byte-exact, capped and counted.
package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/retry"
	"github.com/execq/execq/tasks"
)

// Appender stores events; *rdb.Store is one.
type Appender interface {
	AppendEvents(ctx context.Context, id string, entries ...rdb.Entry) error
}

// Config tunes a Writer.
type Config struct {
	// Linger is how long output may wait for more before it is sent while
	// an append is in flight; output that comes while none is goes at once.
	// Defaults to 5ms.
	Linger time.Duration
	// ChunkBytes is the size at which pending output is sent at once.
	// Defaults to 16 KiB.
	ChunkBytes int
	// MaxOutputBytes caps what is kept and streamed of each of stdout and
	// stderr; the rest is counted. Defaults to 1 MiB.
	MaxOutputBytes int64
	// RetryFor is how long a failing append is retried before its events
	// are given up. Defaults to 30s.
	RetryFor time.Duration
	// OnAppend, when set, is told how long each append took and its error.
	OnAppend func(d time.Duration, entries int, err error)
}

func (c Config) withDefaults() Config {
	if c.Linger <= 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = 16 << 10
	}
	if c.MaxOutputBytes <= 0 {
		c.MaxOutputBytes = 1 << 20
	}
	if c.RetryFor <= 0 {
		c.RetryFor = 30 * time.Second
	}
	return c
}

// Output is what a Writer kept of one of the command's streams.
type Output struct {
	// Data is the first MaxOutputBytes bytes.
	Data []byte
	// Total counts every byte written, kept or not.
	Total int64
	// Truncated is true when bytes were dropped past the cap.
	Truncated bool
}

// Writer coalesces a command's output into stream events and keeps the
// first MaxOutputBytes of each stream for the result.
//
// Back-pressure is bounded by the cap: the writer never blocks the command,
// and what waits to be sent is at most the kept output. Output past the cap
// is counted, not stored. If Redis cannot take the events for RetryFor,
// they are given up and Close reports it.
//
// Writes must come from one goroutine at a time (the demultiplexer of a
// command's output does that); the linger timer is handled internally.
type Writer struct {
	ctx context.Context
	app Appender
	id  string
	cfg Config

	mu         sync.Mutex
	out        [2]Output // stdout, stderr
	pending    []byte
	pendingFor tasks.EventType
	timer      *time.Timer
	queue      []rdb.Entry
	inflight   bool // an append is under way
	closed     bool
	wake       chan struct{}
	done       chan struct{}
	sendErr    error
	dropped    int
}

// NewWriter starts a Writer for execution id. ctx bounds the appends.
func NewWriter(ctx context.Context, app Appender, id string, cfg Config) *Writer {
	w := &Writer{
		ctx:  ctx,
		app:  app,
		id:   id,
		cfg:  cfg.withDefaults(),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	go w.send()
	return w
}

// Stdout is the writer for the command's standard output.
func (w *Writer) Stdout() io.Writer { return streamWriter{w, tasks.EventStdout} }

// Stderr is the writer for the command's standard error.
func (w *Writer) Stderr() io.Writer { return streamWriter{w, tasks.EventStderr} }

type streamWriter struct {
	w    *Writer
	kind tasks.EventType
}

func (s streamWriter) Write(p []byte) (int, error) {
	s.w.write(s.kind, p)
	return len(p), nil
}

func index(kind tasks.EventType) int {
	if kind == tasks.EventStderr {
		return 1
	}
	return 0
}

func (w *Writer) write(kind tasks.EventType, p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := &w.out[index(kind)]
	o.Total += int64(len(p))
	room := w.cfg.MaxOutputBytes - int64(len(o.Data))
	if w.closed {
		room = 0
	}
	if int64(len(p)) > room {
		o.Truncated = true
		p = p[:max(room, 0)]
	}
	if len(p) == 0 {
		return
	}
	o.Data = append(o.Data, p...)
	if w.pendingFor != kind {
		w.flushLocked()
		w.pendingFor = kind
	}
	w.pending = append(w.pending, p...)
	if len(w.pending) >= w.cfg.ChunkBytes || !w.inflight && len(w.queue) == 0 {
		// Nothing is on its way: this goes now. Otherwise it waits for the
		// append in flight, gathering what comes meanwhile.
		w.flushLocked()
		return
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(w.cfg.Linger, w.flushTimer)
	}
}

func (w *Writer) flushTimer() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	w.flushLocked()
}

// flushLocked moves pending output into the send queue, in entries of at
// most ChunkBytes.
func (w *Writer) flushLocked() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	for len(w.pending) > 0 {
		if last := len(w.queue) - 1; last >= 0 && w.queue[last].Type == w.pendingFor && len(w.queue[last].Data) < w.cfg.ChunkBytes {
			// Joins the entry still waiting to be sent.
			n := min(len(w.pending), w.cfg.ChunkBytes-len(w.queue[last].Data))
			w.queue[last].Data = append(w.queue[last].Data, w.pending[:n]...)
			w.pending = w.pending[n:]
			continue
		}
		n := min(len(w.pending), w.cfg.ChunkBytes)
		w.queue = append(w.queue, rdb.Entry{Type: w.pendingFor, Data: append([]byte(nil), w.pending[:n]...)})
		w.pending = w.pending[n:]
	}
	w.pending = nil
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// send appends queued entries in order, batching what accumulated while the
// previous append was in flight.
func (w *Writer) send() {
	defer close(w.done)
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		closed := w.closed
		w.inflight = len(batch) > 0
		w.mu.Unlock()
		if len(batch) > 0 {
			err := w.appendWithRetry(batch)
			w.mu.Lock()
			if err != nil {
				w.sendErr = errors.Join(w.sendErr, err)
				w.dropped += len(batch)
			}
			// What came while it was in flight goes in the next append.
			w.flushLocked()
			w.mu.Unlock()
			continue
		}
		if closed {
			return
		}
		<-w.wake
	}
}

func (w *Writer) appendWithRetry(batch []rdb.Entry) error {
	deadline := time.Now().Add(w.cfg.RetryFor)
	b := retry.Backoff{First: 50 * time.Millisecond, Max: time.Second}
	for {
		start := time.Now()
		err := w.app.AppendEvents(w.ctx, w.id, batch...)
		if w.cfg.OnAppend != nil {
			w.cfg.OnAppend(time.Since(start), len(batch), err)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, rdb.ErrStaleAttempt) {
			// A later attempt owns the stream: nothing of this one may land.
			return err
		}
		wait := b.Next()
		if w.ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		if retry.Sleep(w.ctx, wait) != nil {
			return err
		}
	}
}

// Close sends what is pending, waits until every event is appended or
// given up, and reports events that could not be appended. Writes after
// Close are counted but not kept.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.flushLocked()
		w.closed = true
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sendErr != nil {
		return fmt.Errorf("stream of %s lost %d events: %w", w.id, w.dropped, w.sendErr)
	}
	return nil
}

// StdoutOutput returns what was kept of standard output.
func (w *Writer) StdoutOutput() Output { return w.output(tasks.EventStdout) }

// StderrOutput returns what was kept of standard error.
func (w *Writer) StderrOutput() Output { return w.output(tasks.EventStderr) }

func (w *Writer) output(kind tasks.EventType) Output {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.out[index(kind)]
	o.Data = append([]byte(nil), o.Data...)
	return o
}
