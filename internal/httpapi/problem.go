package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Problem is an RFC 9457 problem details object, the body of every error
// the API answers (Content-Type application/problem+json).
type Problem struct {
	// Type is a URI naming the kind of problem; "about:blank" when the
	// status code says it all.
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	// Detail says what is wrong with this request.
	Detail string `json:"detail"`
	// Errors lists each problem of an invalid request.
	Errors []ProblemError `json:"errors,omitempty"`
}

// ProblemError is one problem of an invalid request.
type ProblemError struct {
	Detail string `json:"detail"`
}

// Problem types.
const (
	problemBlank      = "about:blank"
	problemValidation = "urn:execq:problem:invalid-request"
	problemConflict   = "urn:execq:problem:id-conflict"
	problemFinished   = "urn:execq:problem:finished"
	problemRateLimit  = "urn:execq:problem:rate-limited"
	problemStreams    = "urn:execq:problem:too-many-streams"
	// A session's ID is taken.
	problemSessionExists = "urn:execq:problem:session-exists"
	// A session admits no more executions: it was lost or closed.
	problemSessionEnded = "urn:execq:problem:session-ended"
	// No worker opened a session in time.
	problemNoSessionWorker = "urn:execq:problem:no-session-worker"
)

var problemTitles = map[string]string{
	problemValidation: "The request is not valid",
	problemConflict:   "The execution ID is bound to another request",
	problemFinished:   "The execution has finished",
	problemRateLimit:  "Too many requests",
	problemStreams:    "Too many open event streams",

	problemSessionExists:   "The session ID is taken",
	problemSessionEnded:    "The session has ended",
	problemNoSessionWorker: "No worker opened the session in time",
}

// writeProblem answers with a problem of type typ ("" for about:blank).
func writeProblem(w http.ResponseWriter, status int, typ, detail string, errs ...string) {
	p := Problem{Type: typ, Status: status, Detail: detail, Title: problemTitles[typ]}
	if typ == "" {
		p.Type = problemBlank
	}
	if p.Title == "" {
		p.Title = http.StatusText(status)
	}
	for _, e := range errs {
		p.Errors = append(p.Errors, ProblemError{Detail: e})
	}
	body, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Del("Content-Encoding")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
