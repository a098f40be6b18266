package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// Status is the body of a 202 to GET /v1/executions/{id}: the execution
// has no result yet.
type Status struct {
	ExecutionID string `json:"executionId"`
	// Status is "queued" before an attempt started, "running" after.
	Status string `json:"status"`
	// Attempt is the number of attempts started (0 while queued).
	Attempt int `json:"attempt"`
}

// get is GET /v1/executions/{id}[?wait=D]: 200 with the result JSON when
// it has one, 202 with its Status before; with wait, it waits up to D
// (at most MaxWait) for the result first.
func (a *API) get(w http.ResponseWriter, r *http.Request, owner string) {
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxWait {
			msg := fmt.Sprintf("wait %q is not a duration from 0s to %s (like 30s)", v, MaxWait)
			writeProblem(w, http.StatusUnprocessableEntity, problemValidation, msg, msg)
			return
		}
		wait = d
	}
	id, e, ok := a.lookup(w, r, owner)
	if !ok {
		return
	}
	if e.Result == nil && wait > 0 {
		var err error
		if e, err = a.waitResult(r.Context(), id, e, wait); err != nil {
			a.internal(w, r, err)
			return
		}
	}
	if e.Result != nil {
		writeRawJSON(w, http.StatusOK, e.Result)
		return
	}
	st := Status{ExecutionID: id, Status: "queued", Attempt: e.Attempts}
	if e.Attempts > 0 {
		st.Status = "running"
	}
	writeJSON(w, http.StatusAccepted, st)
}

// waitResult waits up to d for the exit event of the execution e, on the
// hub, and reads the execution again. A deliberate wait, bounded by d, that
// ends early with ctx or when the API closes.
func (a *API) waitResult(ctx context.Context, id string, e rdb.Execution, d time.Duration) (rdb.Execution, error) {
	// e's last event was read before its result: an exit written since is
	// after it.
	sub, err := a.cfg.Hub.Subscribe(id, e.LastEventID)
	if err != nil {
		return e, err
	}
	defer sub.Close()
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	defer context.AfterFunc(a.ctx, cancel)()
	for {
		ev, err := sub.Next(wctx)
		if err != nil {
			if ctx.Err() != nil {
				return e, ctx.Err()
			}
			break
		}
		if ev.Type == tasks.EventExit {
			break
		}
	}
	return a.cfg.Store.Lookup(ctx, id)
}

// cancelExecution is POST /v1/executions/{id}/cancel: 202 once the cancel
// is recorded (a queued execution has its "canceled" result then; a
// running one gets it from its worker), 409 when it has finished.
func (a *API) cancelExecution(w http.ResponseWriter, r *http.Request, owner string) {
	id, e, ok := a.lookup(w, r, owner)
	if !ok {
		return
	}
	if e.Result != nil {
		writeProblem(w, http.StatusConflict, problemFinished, "execution "+id+" has finished; there is nothing to cancel")
		return
	}
	err := a.cfg.Client.Cancel(r.Context(), id)
	switch {
	case errors.Is(err, producer.ErrFinished):
		writeProblem(w, http.StatusConflict, problemFinished, "execution "+id+" has finished; there is nothing to cancel")
	case errors.Is(err, producer.ErrNotFound):
		writeProblem(w, http.StatusNotFound, "", "no execution "+id+" of this token within the retention period")
	case err != nil:
		a.internal(w, r, err)
	default:
		writeJSON(w, http.StatusAccepted, submitted{ExecutionID: id})
	}
}
