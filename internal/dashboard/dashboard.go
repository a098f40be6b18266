// Package dashboard serves the operators' web side: the asynqmon UI under
// /monitoring/, showing executions as a person reads them; the execution
// view under /executions/ (counts by execq status, a filterable list, each
// execution's request, result and live output, the sessions and the
// executions of each); Prometheus metrics under /metrics; and /healthz.
package dashboard

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/internal/webguard"
	"github.com/execq/execq/producer"
)

// RootPath is where the asynqmon UI is mounted.
const RootPath = "/monitoring"

// Config configures the dashboard handler.
type Config struct {
	// Redis holds the queues. Required.
	Redis redis.UniversalClient
	// Store records cancels. Required.
	Store *rdb.Store
	// Metrics serves /metrics; nil serves none.
	Metrics http.Handler
	// Health answers /healthz: nil is healthy. Defaults to a Redis ping.
	Health func(context.Context) error
	// ReadOnly turns off every action that changes a queue or a task.
	ReadOnly bool
	// User and Password, when User is set, protect every page with HTTP
	// basic auth (asynqmon has none of its own).
	User, Password string
	// AllowedHosts are the host names the dashboard answers to besides
	// localhost and IP addresses; a request for any other gets 403, and so
	// does a state-changing request from another origin (webguard).
	AllowedHosts []string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock tells the execution view the time. Defaults to clock.System().
	Clock clock.Clock
}

// New returns the dashboard's handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Redis == nil || cfg.Store == nil {
		return nil, errors.New("dashboard: Redis and Store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System()
	}
	mon := asynqmon.New(asynqmon.Options{
		RootPath:         RootPath,
		RedisConnOpt:     sharedRedis{cfg.Redis},
		PayloadFormatter: asynqmon.PayloadFormatterFunc(FormatPayload),
		ResultFormatter:  asynqmon.ResultFormatterFunc(FormatResult),
		ReadOnly:         cfg.ReadOnly,
	})
	mux := http.NewServeMux()
	inspector := asynq.NewInspectorFromRedisClient(cfg.Redis)
	ui := http.Handler(mon)
	if !cfg.ReadOnly {
		ui = cancelThroughExecq(mon, cfg.Store, inspector, cfg.Logger)
	}
	mux.Handle(RootPath+"/", linkToExecutions(ui))
	view := &executions{
		client: producer.New(cfg.Redis, producer.Options{
			KeyPrefix: cfg.Store.Keys().Prefix, Retention: cfg.Store.Retention(),
		}),
		store:     cfg.Store,
		inspector: inspector,
		clock:     cfg.Clock,
		log:       cfg.Logger,
	}
	view.register(mux)
	mux.Handle(RootPath, http.RedirectHandler(RootPath+"/", http.StatusFound))
	if cfg.Metrics != nil {
		mux.Handle("/metrics", cfg.Metrics)
	}
	health := cfg.Health
	if health == nil {
		health = func(ctx context.Context) error { return cfg.Redis.Ping(ctx).Err() }
	}
	mux.Handle("/healthz", HealthHandler(health))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, RootPath+"/", http.StatusFound)
	})
	var h http.Handler = mux
	if cfg.User != "" {
		h = basicAuth(h, cfg.User, cfg.Password)
	}
	return webguard.Wrap(h, webguard.Config{Hosts: cfg.AllowedHosts}), nil
}

// HealthHandler answers 200 "ok" when health returns nil and 503 with the
// error otherwise.
func HealthHandler(health func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := health(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
}

// sharedRedis hands asynqmon the client execq already has.
type sharedRedis struct{ c redis.UniversalClient }

func (s sharedRedis) MakeRedisClient() any { return s.c }

func basicAuth(next http.Handler, user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="execq", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var (
	cancelOne   = regexp.MustCompile(`^` + RootPath + `/api/queues/([^/]+)/active_tasks/([^/]+):cancel$`)
	cancelAll   = regexp.MustCompile(`^` + RootPath + `/api/queues/([^/]+)/active_tasks:cancel_all$`)
	cancelBatch = regexp.MustCompile(`^` + RootPath + `/api/queues/([^/]+)/active_tasks:batch_cancel$`)
)

// cancelThroughExecq makes the UI's cancel buttons cancel executions the
// execq way (a recorded cancel the worker acts on, ending with a "canceled"
// result) instead of asynq's, which only interrupts the handler and has the
// task retried.
func cancelThroughExecq(next http.Handler, store *rdb.Store, insp *asynq.Inspector, log *slog.Logger) http.Handler {
	cancel := func(r *http.Request, id string) error {
		if err := store.MarkCanceled(r.Context(), id); err != nil {
			return err
		}
		log.Info("execution canceled from the dashboard", "execution", id)
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		path := r.URL.Path
		switch {
		case cancelOne.MatchString(path):
			id := cancelOne.FindStringSubmatch(path)[2]
			if err := cancel(r, id); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case cancelAll.MatchString(path):
			queue := cancelAll.FindStringSubmatch(path)[1]
			for page := 1; ; page++ {
				active, err := insp.ListActiveTasks(queue, asynq.Page(page), asynq.PageSize(100))
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				for _, t := range active {
					if err := cancel(r, t.ID); err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
						return
					}
				}
				if len(active) < 100 {
					break
				}
			}
			w.WriteHeader(http.StatusNoContent)
		case cancelBatch.MatchString(path):
			var req struct {
				TaskIDs []string `json:"task_ids"`
			}
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			resp := struct {
				CanceledIDs []string `json:"canceled_ids"`
				ErrorIDs    []string `json:"error_ids"`
			}{[]string{}, []string{}}
			for _, id := range req.TaskIDs {
				if err := cancel(r, id); err != nil {
					resp.ErrorIDs = append(resp.ErrorIDs, id)
				} else {
					resp.CanceledIDs = append(resp.CanceledIDs, id)
				}
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(resp)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// trimLines shortens s to at most n bytes, on a rune boundary, marking the
// cut.
func trimLines(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:cut], "\n") + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
