package dashboard

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// ExecutionsPath is where the execution view is mounted: the executions as
// execq sees them (asynqmon counts every execution whose handler returned
// as "succeeded", whatever its status).
const ExecutionsPath = "/executions"

// The view's bounds.
const (
	// countMinutes is how many minutes of status counts the view shows.
	countMinutes = 60
	// activeShown is how many queued or running executions it lists.
	activeShown = 100
	// finishedScan is how many log entries one filtered listing reads at
	// most; the page then offers the next ones.
	finishedScan = 5000
	// listLimit is the default and the largest number of finished
	// executions one listing returns.
	listLimit = 200
)

//go:embed executions.html
var executionsPage []byte

//go:embed asynqmon-link.js
var asynqmonLink []byte

// executions serves the execution view: its page, its JSON and each
// execution's events.
type executions struct {
	client    *producer.Client
	store     *rdb.Store
	inspector *asynq.Inspector
	clock     clock.Clock
	log       *slog.Logger
}

func (x *executions) register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+ExecutionsPath+"/{$}", x.page)
	mux.Handle(ExecutionsPath, http.RedirectHandler(ExecutionsPath+"/", http.StatusFound))
	mux.HandleFunc("GET "+ExecutionsPath+"/asynqmon-link.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(asynqmonLink)
	})
	mux.HandleFunc("GET "+ExecutionsPath+"/api/list", x.list)
	mux.HandleFunc("GET "+ExecutionsPath+"/api/executions/{id}", x.one)
	mux.HandleFunc("GET "+ExecutionsPath+"/api/executions/{id}/events", x.events)
	mux.HandleFunc("GET "+ExecutionsPath+"/api/sessions", x.sessions)
	mux.HandleFunc("GET "+ExecutionsPath+"/api/sessions/{id}", x.session)
}

func (x *executions) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'")
	w.Write(executionsPage)
}

// active is a queued or running execution, as the view lists it.
type active struct {
	ID         string    `json:"executionId"`
	Status     string    `json:"status"`
	Queue      string    `json:"queue,omitempty"`
	Image      string    `json:"image,omitempty"`
	EnqueuedAt time.Time `json:"enqueuedAt"`
	Attempt    int       `json:"attempt,omitempty"`
}

// filter is what a listing asks for; empty fields match everything.
type filter struct {
	status, image, worker, queue string
}

func (f filter) matches(status, image, worker, queue string) bool {
	return (f.status == "" || f.status == status) && (f.image == "" || strings.Contains(image, f.image)) &&
		(f.worker == "" || strings.Contains(worker, f.worker)) && (f.queue == "" || f.queue == queue)
}

type listing struct {
	Active   []active           `json:"active"`
	Finished []rdb.Summary      `json:"finished"`
	Next     string             `json:"next,omitempty"`
	Counts   []rdb.MinuteCounts `json:"counts"`
}

func (x *executions) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := filter{status: q.Get("status"), image: q.Get("image"), worker: q.Get("worker"), queue: q.Get("queue")}
	limit := listLimit
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n < limit {
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	out := listing{Active: []active{}}
	var err error
	if out.Counts, err = x.store.StatusCounts(ctx, x.clock.Now(), countMinutes); err != nil {
		x.fail(w, err)
		return
	}
	if f.status == "" || f.status == "queued" || f.status == "running" {
		if out.Active, err = x.active(ctx, f); err != nil {
			x.fail(w, err)
			return
		}
	}
	out.Finished, out.Next, err = x.finished(ctx, f, q.Get("before"), limit)
	if err != nil {
		x.fail(w, err)
		return
	}
	writeJSON(w, out)
}

// active lists the newest pending executions without a result, with their
// image when their task still holds the request.
func (x *executions) active(ctx context.Context, f filter) ([]active, error) {
	pending, err := x.store.PendingNewest(ctx, activeShown)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(pending))
	for i, p := range pending {
		ids[i] = p.ID
	}
	states, err := x.store.TaskStates(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := []active{}
	for _, p := range pending {
		st := states[p.ID]
		if st.HasResult || st.State == "" {
			continue
		}
		a := active{ID: p.ID, Status: "queued", Queue: st.Queue, EnqueuedAt: p.EnqueuedAt}
		if st.State == "active" {
			a.Status = "running"
		}
		if info, err := x.inspector.GetTaskInfo(st.Queue, p.ID); err == nil {
			if req, err := tasks.DecodeRequest(info.Payload); err == nil {
				a.Image = req.Image
			}
			a.Attempt = info.Retried + 1
		}
		if f.matches(a.Status, a.Image, "", a.Queue) {
			out = append(out, a)
		}
	}
	return out, nil
}

// finished lists up to limit ended executions that match f, from before the
// log entry before, reading at most finishedScan entries; next is where the
// following listing starts ("" at the end of the log).
func (x *executions) finished(ctx context.Context, f filter, before string, limit int) ([]rdb.Summary, string, error) {
	out := []rdb.Summary{}
	for scanned := 0; scanned < finishedScan; {
		page, err := x.store.Finished(ctx, before, 500)
		if err != nil {
			return nil, "", err
		}
		for _, s := range page {
			scanned++
			before = s.Entry
			if f.matches(string(s.Status), s.Image, s.Worker, s.Queue) {
				out = append(out, s)
				if len(out) == limit {
					return out, before, nil
				}
			}
		}
		if len(page) < 500 {
			return out, "", nil
		}
	}
	return out, before, nil
}

// detail is one execution as the view shows it.
type detail struct {
	ID      string             `json:"executionId"`
	Queue   string             `json:"queue,omitempty"`
	State   string             `json:"state,omitempty"`
	Request *tasks.ExecRequest `json:"request,omitempty"`
	Result  *tasks.Result      `json:"result,omitempty"`
	// Asynqmon is the path of its task's page in asynqmon.
	Asynqmon string `json:"asynqmon,omitempty"`
}

func (x *executions) one(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := tasks.ValidateID(id); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	d := detail{ID: id}
	res, err := x.store.Result(ctx, id)
	switch {
	case err == nil:
		d.Result = res
	case !errors.Is(err, rdb.ErrNotFound):
		x.fail(w, err)
		return
	}
	queue, err := x.store.Queue(ctx, id)
	switch {
	case err == nil:
		d.Queue = queue
		d.Asynqmon = RootPath + "/queues/" + url.PathEscape(queue) + "/tasks/" + url.PathEscape(id)
		if info, err := x.inspector.GetTaskInfo(queue, id); err == nil {
			d.State = info.State.String()
			if req, err := tasks.DecodeRequest(info.Payload); err == nil {
				d.Request = req
			}
		}
	case !errors.Is(err, rdb.ErrNotFound):
		x.fail(w, err)
		return
	}
	if d.Result == nil && d.Queue == "" {
		http.Error(w, "no execution "+id+" within the retention period", http.StatusNotFound)
		return
	}
	writeJSON(w, d)
}

func (x *executions) fail(w http.ResponseWriter, err error) {
	x.log.Error("execution view", "err", err)
	http.Error(w, err.Error(), http.StatusServiceUnavailable)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// linkToExecutions adds to asynqmon's pages the script that links each
// task's page to the execution view.
func linkToExecutions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, RootPath+"/api/") {
			next.ServeHTTP(w, r)
			return
		}
		rec := &recorder{header: http.Header{}, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		ct := rec.header.Get("Content-Type")
		if ct == "" {
			ct = http.DetectContentType(body)
		}
		if strings.HasPrefix(ct, "text/html") {
			tag := []byte(`<script src="` + ExecutionsPath + `/asynqmon-link.js" defer></script></head>`)
			body = bytes.Replace(body, []byte("</head>"), tag, 1)
			rec.header.Set("Content-Type", ct)
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.code)
		w.Write(body)
	})
}

// recorder holds a response so that it can be changed before it is sent.
type recorder struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }
