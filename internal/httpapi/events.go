package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/execq/execq/tasks"
)

// NDJSON is the media type of the events as JSON lines.
const NDJSON = "application/x-ndjson"

// OutputData is the data of a stdout or stderr event: Text when the chunk
// is valid UTF-8, Base64 otherwise.
type OutputData struct {
	Text   *string `json:"text,omitempty"`
	Base64 string  `json:"base64,omitempty"`
}

// EventLine is one line of the NDJSON form of the events.
type EventLine struct {
	ID    string          `json:"id,omitempty"`
	Event tasks.EventType `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// events is GET /v1/executions/{id}/events: the execution's events from
// after Last-Event-ID (or ?after=), as Server-Sent Events, or as NDJSON
// when the client accepts application/x-ndjson; the stream ends after the
// exit event.
func (a *API) events(w http.ResponseWriter, r *http.Request, owner string) {
	after := r.Header.Get("Last-Event-ID")
	if after == "" {
		after = r.URL.Query().Get("after")
	}
	if after != "" {
		if _, err := parseEntryID(after); err != nil {
			msg := "the position to resume from: " + err.Error()
			writeProblem(w, http.StatusUnprocessableEntity, problemValidation, msg, msg)
			return
		}
	}
	id, e, ok := a.lookup(w, r, owner)
	if !ok {
		return
	}
	release, ok := a.limits.openStream(owner)
	if !ok {
		w.Header().Set("Retry-After", "5")
		writeProblem(w, http.StatusTooManyRequests, problemStreams,
			fmt.Sprintf("this token has %d event streams open, the most it may; close one first", a.cfg.MaxStreams))
		return
	}
	defer release()
	a.cfg.Metrics.StreamOpened()
	defer a.cfg.Metrics.StreamClosed()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(a.ctx, cancel)()
	out := newEventWriter(w, wantsNDJSON(r.Header.Get("Accept")))
	out.start()
	if !out.ndjson {
		stop := out.pings(a.cfg.PingInterval)
		defer stop()
	}
	var err error
	if e.Result != nil {
		err = a.replay(ctx, out, id, after, e.Result, e.Stream)
	} else {
		err = a.follow(ctx, out, id, after)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, errClientGone) {
		a.cfg.Logger.Warn("event stream", "execution", id, "err", err)
	}
	if a.ctx.Err() != nil && r.Context().Err() == nil {
		out.comment("server shutting down; resume with Last-Event-ID")
	}
}

// replay writes the events of a finished execution, whose stream is
// complete, without waiting; when the stream has expired, one exit event
// made from the result.
func (a *API) replay(ctx context.Context, out *eventWriter, id, after string, result []byte, stream bool) error {
	if !stream {
		var res tasks.Result
		if err := json.Unmarshal(result, &res); err != nil {
			return fmt.Errorf("decode result of %s: %w", id, err)
		}
		data, err := json.Marshal(tasks.ExitDataOf(&res))
		if err != nil {
			return err
		}
		return out.event(tasks.Event{Type: tasks.EventExit, Data: data})
	}
	for {
		events, err := a.cfg.Store.EventsAfter(ctx, id, after, 256)
		if err != nil {
			return err
		}
		for _, ev := range events {
			if err := out.event(ev); err != nil {
				return err
			}
			if ev.Type == tasks.EventExit {
				return nil
			}
			after = ev.ID
		}
		if len(events) == 0 {
			return nil
		}
	}
}

// follow writes the events of a running or queued execution as the hub
// delivers them, up to its exit event. A deliberate wait, as long as the
// execution takes, that ends with ctx.
func (a *API) follow(ctx context.Context, out *eventWriter, id, after string) error {
	sub, err := a.cfg.Hub.Subscribe(id, after)
	if err != nil {
		return err
	}
	defer sub.Close()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		if err := out.event(ev); err != nil {
			return err
		}
		if ev.Type == tasks.EventExit {
			return nil
		}
	}
}

func wantsNDJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == NDJSON {
			return true
		}
	}
	return false
}

var errClientGone = errors.New("the client went away")

// eventWriter writes events to one response, flushing each at once. Its
// methods may be called from two goroutines (the events and the pings).
type eventWriter struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	rc     *http.ResponseController
	ndjson bool
	failed bool
}

func newEventWriter(w http.ResponseWriter, ndjson bool) *eventWriter {
	return &eventWriter{w: w, rc: http.NewResponseController(w), ndjson: ndjson}
}

func (o *eventWriter) start() {
	h := o.w.Header()
	if o.ndjson {
		h.Set("Content-Type", NDJSON)
	} else {
		h.Set("Content-Type", "text/event-stream")
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	o.w.WriteHeader(http.StatusOK)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flushLocked()
}

// pings writes a ": ping" comment every d until stop is called.
func (o *eventWriter) pings(d time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				o.comment("ping")
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

func (o *eventWriter) comment(text string) {
	if o.ndjson {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writeLocked(": " + text + "\n\n")
}

// event writes ev: data is {"text"} or {"base64"} for output, the
// stream's own JSON for started and exit.
func (o *eventWriter) event(ev tasks.Event) error {
	data, err := EventData(ev)
	if err != nil {
		return err
	}
	var text string
	if o.ndjson {
		line, err := json.Marshal(EventLine{ID: ev.ID, Event: ev.Type, Data: data})
		if err != nil {
			return err
		}
		text = string(line) + "\n"
	} else {
		var b strings.Builder
		if ev.ID != "" {
			b.WriteString("id: " + ev.ID + "\n")
		}
		b.WriteString("event: " + string(ev.Type) + "\n")
		b.WriteString("data: ")
		b.Write(data)
		b.WriteString("\n\n")
		text = b.String()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.writeLocked(text) {
		return errClientGone
	}
	return nil
}

func (o *eventWriter) writeLocked(text string) bool {
	if o.failed {
		return false
	}
	if _, err := io.WriteString(o.w, text); err != nil {
		o.failed = true
		return false
	}
	return o.flushLocked()
}

func (o *eventWriter) flushLocked() bool {
	if err := o.rc.Flush(); err != nil {
		o.failed = true
		return false
	}
	return true
}

// EventData is the JSON data of ev as the event streams carry it: {"text"}
// for output that is valid UTF-8, {"base64"} otherwise, and the stream's own
// JSON, compacted, for started and exit. It never holds a newline, so it is one
// SSE data line.
func EventData(ev tasks.Event) (json.RawMessage, error) {
	switch ev.Type {
	case tasks.EventStdout, tasks.EventStderr:
		var d OutputData
		if utf8.Valid(ev.Data) {
			s := string(ev.Data)
			d.Text = &s
		} else {
			d.Base64 = base64.StdEncoding.EncodeToString(ev.Data)
		}
		return json.Marshal(d)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, ev.Data); err == nil {
		return compact.Bytes(), nil
	}
	return json.Marshal(map[string]string{"raw": string(ev.Data)})
}
