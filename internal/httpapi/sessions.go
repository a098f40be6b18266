package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// Sessions is the body of a 200 to GET /v1/sessions.
type Sessions struct {
	// Sessions are the token's sessions, newest first, each as GET
	// /v1/sessions/{id} answers it.
	Sessions []json.RawMessage `json:"sessions"`
}

// Bounds of GET /v1/sessions.
const (
	// DefaultSessionList is how many sessions it lists without ?limit=.
	DefaultSessionList = 100
	// MaxSessionList is the largest ?limit=.
	MaxSessionList = 1000
	// maxSessionScan bounds how many of the newest sessions, of every
	// token, a listing reads to find its token's.
	maxSessionScan = 10000
)

// createSession is POST /v1/sessions: 201 with the session's state once a
// worker opened it, 409 when its ID is taken, 422 when it is invalid or
// the worker refused it, 503 when no worker opened it in time (it is
// closed then).
func (a *API) createSession(w http.ResponseWriter, r *http.Request, owner string) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	req, status, err := decodeSessionRequest(body)
	if err != nil {
		writeProblem(w, status, problemValidation, err.Error(), err.Error())
		return
	}
	if !identify(w, r, &req.ID, &req.Owner, owner) {
		return
	}
	if !req.CreatedAt.IsZero() {
		invalid(w, "createdAt is set by the server, when it creates the session; leave it out")
		return
	}
	if err := a.validateSession(req); err != nil {
		var ve *tasks.ValidationError
		if errors.As(err, &ve) {
			writeProblem(w, http.StatusUnprocessableEntity, problemValidation, err.Error(), ve.Problems...)
			return
		}
		a.internal(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.SessionCreateTimeout)
	defer cancel()
	defer context.AfterFunc(a.ctx, cancel)()
	s, err := a.cfg.Client.CreateSession(ctx, *req)
	var ve *tasks.ValidationError
	switch {
	case errors.As(err, &ve):
		writeProblem(w, http.StatusUnprocessableEntity, problemValidation, err.Error(), ve.Problems...)
		return
	case errors.Is(err, producer.ErrSessionExists):
		writeProblem(w, http.StatusConflict, problemSessionExists,
			"session ID "+req.ID+" was used before; a new session needs a new ID")
		return
	case err != nil && r.Context().Err() != nil:
		return
	case err != nil && a.ctx.Err() != nil:
		writeProblem(w, http.StatusServiceUnavailable, "", "the server is shutting down; session "+req.ID+" was closed before a worker opened it")
		return
	case errors.Is(err, context.DeadlineExceeded):
		writeProblem(w, http.StatusServiceUnavailable, problemNoSessionWorker, err.Error())
		return
	case err != nil:
		a.notOpened(w, r, owner, req.ID, err)
		return
	}
	info, err := s.Info(r.Context())
	if err != nil {
		a.internal(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/sessions/"+info.ID)
	a.writeSession(w, http.StatusCreated, info)
}

// notOpened answers a session that ended before it opened: a 422 when a
// worker refused it (its request was invalid there: an image or a
// language it does not allow, limits above its own), a 503 otherwise.
func (a *API) notOpened(w http.ResponseWriter, r *http.Request, owner, sid string, err error) {
	info, ierr := a.cfg.Client.SessionOf(sid, owner).Info(r.Context())
	if ierr == nil && info.Status.Ended() && info.Cause == tasks.CauseFailed && info.Error != "" {
		writeProblem(w, http.StatusUnprocessableEntity, problemValidation,
			"the worker refused session "+sid+": "+info.Error, info.Error)
		return
	}
	a.internal(w, r, err)
}

// validateSession checks req as a worker with the API's limits would.
func (a *API) validateSession(req *tasks.SessionRequest) error {
	if err := req.Check(); err != nil {
		return err
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode session request: %w", err)
	}
	x := req.Exec()
	return x.Validate(a.cfg.Limits, len(payload))
}

// getSession is GET /v1/sessions/{id}: the session's state, with idleMs.
func (a *API) getSession(w http.ResponseWriter, r *http.Request, owner string) {
	sid, ok := sessionID(w, r)
	if !ok {
		return
	}
	info, err := a.cfg.Client.SessionOf(sid, owner).Info(r.Context())
	switch {
	case errors.Is(err, producer.ErrSessionNotFound):
		writeProblem(w, http.StatusNotFound, "", noSession(sid))
	case err != nil:
		a.internal(w, r, err)
	default:
		a.writeSession(w, http.StatusOK, info)
	}
}

// closeSession is DELETE /v1/sessions/{id}: 204 once the close is
// recorded (its worker ends the session shortly after; GET says closing,
// then closed), and for a session that had ended.
func (a *API) closeSession(w http.ResponseWriter, r *http.Request, owner string) {
	sid, ok := sessionID(w, r)
	if !ok {
		return
	}
	err := a.cfg.Client.SessionOf(sid, owner).Close(r.Context())
	switch {
	case errors.Is(err, producer.ErrSessionNotFound):
		writeProblem(w, http.StatusNotFound, "", noSession(sid))
	case err != nil:
		a.internal(w, r, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// submitInSession is POST /v1/sessions/{id}/executions: POST
// /v1/executions into the session.
func (a *API) submitInSession(w http.ResponseWriter, r *http.Request, owner string) {
	sid, ok := sessionID(w, r)
	if !ok {
		return
	}
	a.submitTo(w, r, owner, sid)
}

// listSessions is GET /v1/sessions[?all=1][&limit=N]: the token's
// sessions not yet ended (with all, the ended ones too), newest first.
func (a *API) listSessions(w http.ResponseWriter, r *http.Request, owner string) {
	q := r.URL.Query()
	all := false
	switch v := q.Get("all"); v {
	case "", "0", "false":
	case "1", "true":
		all = true
	default:
		invalid(w, fmt.Sprintf("all %q is none of 1, true, 0 and false", v))
		return
	}
	limit := DefaultSessionList
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxSessionList {
			invalid(w, fmt.Sprintf("limit %q is not a number from 1 to %d", v, MaxSessionList))
			return
		}
		limit = n
	}
	list, err := a.ownSessions(r.Context(), owner, limit, !all)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	out := Sessions{Sessions: make([]json.RawMessage, len(list))}
	now := a.cfg.Now()
	for i, info := range list {
		if out.Sessions[i], err = sessionJSON(info, now); err != nil {
			a.internal(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// ownSessions returns up to limit of owner's sessions, newest first; with
// live, only those not yet ended. The index holds every owner's, so it
// reads ever more of the newest until it has limit of owner's, has read
// them all, or has read maxSessionScan.
func (a *API) ownSessions(ctx context.Context, owner string, limit int, live bool) ([]tasks.SessionInfo, error) {
	for window := int64(limit); ; window *= 4 {
		window = min(window, maxSessionScan)
		ids, err := a.cfg.Store.RecentSessions(ctx, window, live)
		if err != nil {
			return nil, err
		}
		all, err := a.cfg.Store.Sessions(ctx, ids)
		if err != nil {
			return nil, err
		}
		own := all[:0]
		for _, s := range all {
			if s.Owner == owner {
				own = append(own, s)
			}
		}
		if len(own) >= limit || int64(len(ids)) < window || window == maxSessionScan {
			return own[:min(len(own), limit)], nil
		}
	}
}

// sessionID reads the path's session ID; ok is false (and a 404 written)
// when it cannot be one.
func sessionID(w http.ResponseWriter, r *http.Request) (string, bool) {
	sid := r.PathValue("id")
	if err := tasks.ValidateID(sid); err != nil {
		writeProblem(w, http.StatusNotFound, "", "no session "+strconv.Quote(sid)+": "+err.Error())
		return sid, false
	}
	return sid, true
}

func noSession(sid string) string {
	return "no session " + sid + " of this token within the retention period"
}

// sessionEnded answers a submission to a session that admits nothing any
// more: 410, saying how it ended.
func (a *API) sessionEnded(w http.ResponseWriter, r *http.Request, owner, sid string, err error) {
	detail := err.Error()
	if info, ierr := a.cfg.Client.SessionOf(sid, owner).Info(r.Context()); ierr == nil {
		switch {
		case info.Status == tasks.SessionLost:
			detail = "session " + sid + " was lost: " + info.Error
		case info.Cause != "":
			detail = "session " + sid + " is " + string(info.Status) + " (" + info.Cause + ")"
			if info.Error != "" {
				detail += ": " + info.Error
			}
		default:
			detail = "session " + sid + " is " + string(info.Status)
		}
	}
	writeProblem(w, http.StatusGone, problemSessionEnded, detail+"; it admits no more executions, create another")
}

// writeSession answers the session's state.
func (a *API) writeSession(w http.ResponseWriter, status int, info tasks.SessionInfo) {
	body, err := sessionJSON(info, a.cfg.Now())
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "", "encode the answer: "+err.Error())
		return
	}
	writeRawJSON(w, status, body)
}

// sessionJSON is the JSON of info with "idleMs", how long the session has
// been idle at now: tasks.SessionInfo's own JSON, one member longer.
func sessionJSON(info tasks.SessionInfo, now time.Time) ([]byte, error) {
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("encode session %s: %w", info.ID, err)
	}
	b = bytes.TrimSuffix(b, []byte("}"))
	b = append(b, `,"idleMs":`...)
	b = strconv.AppendInt(b, info.IdleFor(now).Milliseconds(), 10)
	return append(b, '}'), nil
}

// sessionFields has the JSON fields of tasks.SessionRequest and none of
// its methods, so that a decoder that refuses unknown fields reads it.
type sessionFields tasks.SessionRequest

// sessionWire is a session request's JSON, as tasks.SessionRequest
// writes it.
type sessionWire struct {
	sessionFields
	IdleTimeoutMs int64 `json:"idleTimeoutMs,omitempty"`
	LifetimeMs    int64 `json:"lifetimeMs,omitempty"`
}

// maxDurationMs is the largest duration a time.Duration holds, in ms.
const maxDurationMs = math.MaxInt64 / int64(time.Millisecond)

// decodeSessionRequest reads the body of POST /v1/sessions: a
// tasks.SessionRequest's JSON, whose file contents are base64 or given as
// text in a file's "text". A field the request does not know is refused.
// The status is the one to answer with when it fails, as
// decodeSubmission's.
func decodeSessionRequest(body []byte) (*tasks.SessionRequest, int, error) {
	top, status, err := decodeObject(body)
	if err != nil {
		return nil, status, err
	}
	changed, err := textFiles(top)
	if err != nil {
		return nil, http.StatusUnprocessableEntity, err
	}
	if changed {
		if body, err = json.Marshal(top); err != nil {
			return nil, http.StatusUnprocessableEntity, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var v sessionWire
	if err := dec.Decode(&v); err != nil {
		return nil, http.StatusUnprocessableEntity, fmt.Errorf("the body is not a valid session request: %w", err)
	}
	for name, ms := range map[string]int64{"idleTimeoutMs": v.IdleTimeoutMs, "lifetimeMs": v.LifetimeMs} {
		if ms > maxDurationMs || ms < -maxDurationMs {
			return nil, http.StatusUnprocessableEntity, fmt.Errorf("the body is not a valid session request: %s %d is out of range", name, ms)
		}
	}
	req := tasks.SessionRequest(v.sessionFields)
	req.IdleTimeout = time.Duration(v.IdleTimeoutMs) * time.Millisecond
	req.Lifetime = time.Duration(v.LifetimeMs) * time.Millisecond
	return &req, 0, nil
}
