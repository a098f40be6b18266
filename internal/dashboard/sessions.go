package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

// sessionsShown is the default and the largest number of sessions one
// listing returns.
const sessionsShown = 200

// sessionRow is a session as the view shows it: its state, with its age
// and its idle time at the dashboard's clock.
type sessionRow struct {
	tasks.SessionInfo
	AgeMs  int64
	IdleMs int64
}

// MarshalJSON writes the session's state as tasks.SessionInfo has it, with
// ageMs and idleMs beside it.
func (s sessionRow) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(s.SessionInfo)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["ageMs"], m["idleMs"] = s.AgeMs, s.IdleMs
	return json.Marshal(m)
}

func (x *executions) sessionRow(info tasks.SessionInfo, now time.Time) sessionRow {
	return sessionRow{SessionInfo: info, AgeMs: max(now.Sub(info.CreatedAt), 0).Milliseconds(), IdleMs: info.IdleFor(now).Milliseconds()}
}

// sessions lists the sessions newest first, of every owner: those not yet
// ended, or with all=1 those of the retention period too.
func (x *executions) sessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := sessionsShown
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n < limit {
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	list, err := x.client.Sessions(ctx, int64(limit), q.Get("all") != "1", "*")
	if err != nil {
		x.fail(w, err)
		return
	}
	now := x.clock.Now()
	out := struct {
		Sessions []sessionRow `json:"sessions"`
	}{[]sessionRow{}}
	for _, s := range list {
		out.Sessions = append(out.Sessions, x.sessionRow(s, now))
	}
	writeJSON(w, out)
}

// session is one session and the IDs of the executions it admitted, in
// their order.
func (x *executions) session(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := tasks.ValidateID(id); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	info, err := x.store.Session(ctx, id)
	if errors.Is(err, rdb.ErrNotFound) {
		http.Error(w, "no session "+id+" within the retention period", http.StatusNotFound)
		return
	}
	if err != nil {
		x.fail(w, err)
		return
	}
	ids, err := x.store.SessionExecutions(ctx, id)
	if err != nil {
		x.fail(w, err)
		return
	}
	writeJSON(w, struct {
		Session    sessionRow `json:"session"`
		Executions []string   `json:"executions"`
	}{x.sessionRow(info, x.clock.Now()), append([]string{}, ids...)})
}
