// Package httpapi is execq's HTTP API under /v1/: submit an execution, read
// its status and result (with a bounded long poll), follow its events as
// Server-Sent Events or NDJSON, cancel it; open a session (a sandbox a
// worker keeps for a series of executions, which run in it one after
// another), submit executions into it, read its state, list and close it;
// and the API's OpenAPI document. Bearer tokens scope executions and
// sessions to the token that made them; per-token limits bound the request
// rate and the open event streams. Every error is an RFC 9457 problem
// (application/problem+json).
//
// Event streams and long polls do not each hold a Redis connection: a Hub
// reads the streams of all of them over a few.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/execq/execq/internal/metrics"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/webguard"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// Config configures the API. Zero values mean the defaults.
type Config struct {
	// Client submits and cancels executions. Required.
	Client *producer.Client
	// Store reads executions; its keys and retention must be the
	// Client's. Required.
	Store *rdb.Store
	// Hub follows executions' streams for event streams and long polls;
	// its owner starts and stops it. Required.
	Hub *Hub
	// Tokens are the bearer tokens accepted; none: no authentication, and
	// every execution belongs to the owner "".
	Tokens *Tokens
	// Limits are what requests are validated against: a request above them
	// gets 422 instead of a "rejected" result. Defaults to
	// tasks.DefaultLimits, the workers' defaults.
	Limits tasks.Limits
	// MaxBodyBytes bounds a submission's body (413 above it). Defaults to
	// 64 MiB.
	MaxBodyBytes int64
	// RatePerSecond and RateBurst bound each token's requests (429 above
	// them). Default to 100 per second with bursts of 200.
	RatePerSecond float64
	RateBurst     int
	// MaxStreams bounds each token's open event streams (429 above it).
	// Defaults to 1000.
	MaxStreams int
	// SessionCreateTimeout bounds POST /v1/sessions's wait for a worker
	// to open the session (503 after it; the session is closed then).
	// Defaults to producer.DefaultCreateTimeout.
	SessionCreateTimeout time.Duration
	// PingInterval is the time between the ": ping" comments of an idle
	// event stream. Defaults to 15s.
	PingInterval time.Duration
	// AllowedHosts are the host names the API answers to besides
	// localhost and IP addresses (webguard).
	AllowedHosts []string
	// Now defaults to time.Now; the rate limits read it.
	Now func() time.Time
	// Metrics records requests and streams; nil records nothing.
	Metrics *metrics.API
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// DefaultMaxBodyBytes is the largest submission body by default.
const DefaultMaxBodyBytes = 64 << 20

// MaxWait is the longest long poll (?wait=) of GET /v1/executions/{id}.
const MaxWait = 60 * time.Second

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.RatePerSecond <= 0 {
		c.RatePerSecond = 100
	}
	if c.RateBurst <= 0 {
		c.RateBurst = 200
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 1000
	}
	if c.SessionCreateTimeout <= 0 {
		c.SessionCreateTimeout = producer.DefaultCreateTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 15 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Limits = c.Limits.WithDefaults()
	return c
}

// API is the HTTP API's handler. Close ends its event streams and long
// polls, so that a server's Shutdown does not wait for them.
type API struct {
	cfg     Config
	limits  *limiter
	handler http.Handler
	ctx     context.Context
	cancel  context.CancelFunc
}

// New returns the API.
func New(cfg Config) (*API, error) {
	if cfg.Client == nil || cfg.Store == nil || cfg.Hub == nil {
		return nil, errors.New("httpapi: Client, Store and Hub are required")
	}
	cfg = cfg.withDefaults()
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	a := &API{cfg: cfg, limits: newLimiter(cfg.RatePerSecond, cfg.RateBurst, cfg.MaxStreams, cfg.Now)}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.Handle("/v1/executions", a.route("/v1/executions", true, methods{http.MethodPost: a.submit}))
	mux.Handle("/v1/executions/{id}", a.route("/v1/executions/{id}", true, methods{http.MethodGet: a.get}))
	mux.Handle("/v1/executions/{id}/events", a.route("/v1/executions/{id}/events", true, methods{http.MethodGet: a.events}))
	mux.Handle("/v1/executions/{id}/cancel", a.route("/v1/executions/{id}/cancel", true, methods{http.MethodPost: a.cancelExecution}))
	mux.Handle("/v1/sessions", a.route("/v1/sessions", true, methods{http.MethodPost: a.createSession, http.MethodGet: a.listSessions}))
	mux.Handle("/v1/sessions/{id}", a.route("/v1/sessions/{id}", true, methods{http.MethodGet: a.getSession, http.MethodDelete: a.closeSession}))
	mux.Handle("/v1/sessions/{id}/executions", a.route("/v1/sessions/{id}/executions", true, methods{http.MethodPost: a.submitInSession}))
	mux.Handle("/v1/openapi.json", a.route("/v1/openapi.json", false, methods{http.MethodGet: serveOpenAPI}))
	mux.Handle("/v1/", a.notFound())
	a.handler = webguard.Wrap(mux, webguard.Config{Hosts: cfg.AllowedHosts})
	return a, nil
}

// ServeHTTP serves the API's routes, all under /v1/.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Close ends the open event streams and long polls; requests that come
// after it are served as before (a server shutting down takes no more).
func (a *API) Close() { a.cancel() }

// methods maps HTTP methods to a route's handlers.
type methods map[string]func(w http.ResponseWriter, r *http.Request, owner string)

// route serves one route: its metric, the method check, then (with auth)
// authentication and the rate limit, then the method's handler.
func (a *API) route(name string, auth bool, m methods) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() { a.cfg.Metrics.Request(name, sw.code()) }()
		h, ok := m[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = m[http.MethodGet]
		}
		if !ok {
			allow := make([]string, 0, len(m))
			for method := range m {
				allow = append(allow, method)
			}
			slices.Sort(allow)
			sw.Header().Set("Allow", strings.Join(allow, ", "))
			writeProblem(sw, http.StatusMethodNotAllowed, "", r.Method+" is not a method of "+name)
			return
		}
		owner := ""
		if auth {
			if owner, ok = a.cfg.Tokens.authenticate(r); !ok {
				sw.Header().Set("WWW-Authenticate", `Bearer realm="execq"`)
				writeProblem(sw, http.StatusUnauthorized, "", "a valid bearer token is required (Authorization: Bearer TOKEN)")
				return
			}
			if ok, wait := a.limits.allow(owner); !ok {
				sw.Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
				writeProblem(sw, http.StatusTooManyRequests, problemRateLimit,
					"this token's request rate is over its limit ("+strconv.FormatFloat(a.cfg.RatePerSecond, 'g', -1, 64)+
						" per second, bursts of "+strconv.Itoa(a.cfg.RateBurst)+"); retry after the time Retry-After gives")
				return
			}
		}
		h(sw, r, owner)
	})
}

// notFound answers every path under /v1/ that is no route's.
func (a *API) notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.cfg.Metrics.Request("/v1/", http.StatusNotFound)
		writeProblem(w, http.StatusNotFound, "", "no such resource: "+r.URL.Path+" (see /v1/openapi.json)")
	})
}

// statusWriter records the status code; it passes Flush on (through
// Unwrap, for http.ResponseController).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// lookup reads the execution id for owner: ok is false (and a 404 is
// written) when it is unknown or another owner's, which look the same.
func (a *API) lookup(w http.ResponseWriter, r *http.Request, owner string) (string, rdb.Execution, bool) {
	id := r.PathValue("id")
	if err := tasks.ValidateID(id); err != nil {
		writeProblem(w, http.StatusNotFound, "", "no execution "+strconv.Quote(id)+": "+err.Error())
		return id, rdb.Execution{}, false
	}
	e, err := a.cfg.Store.Lookup(r.Context(), id)
	if err != nil {
		a.internal(w, r, err)
		return id, e, false
	}
	if !e.Known || e.Owner != owner {
		writeProblem(w, http.StatusNotFound, "", "no execution "+id+" of this token within the retention period")
		return id, e, false
	}
	return id, e, true
}

// internal answers a failure of Redis or of execq itself.
func (a *API) internal(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	a.cfg.Logger.Error("api request", "method", r.Method, "path", r.URL.Path, "err", err)
	writeProblem(w, http.StatusServiceUnavailable, "", "execq could not answer: "+err.Error())
}
