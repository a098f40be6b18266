package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// IdempotencyHeader names the header that gives a submission's execution
// ID, as the body's "id" does.
const IdempotencyHeader = "Idempotency-Key"

// submitted is the body of a 202 or 200 to a submission.
type submitted struct {
	ExecutionID string `json:"executionId"`
}

// submit is POST /v1/executions: 202 for a new execution, 200 for the same
// request again under the same ID, 409 for another request under it.
func (a *API) submit(w http.ResponseWriter, r *http.Request, owner string) {
	a.submitTo(w, r, owner, "")
}

// submitTo answers a submission, into the session sid when it is not ""
// (POST /v1/sessions/{id}/executions) or to the session the body names:
// 404 for a session unknown to the token, 410 for one that has ended.
func (a *API) submitTo(w http.ResponseWriter, r *http.Request, owner, sid string) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	req, status, err := decodeSubmission(body)
	if err != nil {
		writeProblem(w, status, problemValidation, err.Error(), err.Error())
		return
	}
	if !identify(w, r, &req.ID, &req.Owner, owner) {
		return
	}
	if req.SessionSeq != 0 {
		invalid(w, "sessionSeq is set by the server, when the session admits the execution; leave it out")
		return
	}
	if sid != "" {
		if req.Session != "" && req.Session != sid {
			invalid(w, fmt.Sprintf("the body's session %q is not the path's %q; give one, or the same", req.Session, sid))
			return
		}
		req.Session = sid
	}
	if err := a.validate(req); err != nil {
		var ve *tasks.ValidationError
		if errors.As(err, &ve) {
			writeProblem(w, http.StatusUnprocessableEntity, problemValidation, err.Error(), ve.Problems...)
			return
		}
		a.internal(w, r, err)
		return
	}
	id, created, err := a.cfg.Client.SubmitCreated(r.Context(), *req)
	var ve *tasks.ValidationError
	switch {
	case errors.As(err, &ve):
		writeProblem(w, http.StatusUnprocessableEntity, problemValidation, err.Error(), ve.Problems...)
		return
	case errors.Is(err, producer.ErrIDConflict):
		writeProblem(w, http.StatusConflict, problemConflict,
			"execution ID "+req.ID+" was submitted before with another request; a new request needs a new ID")
		return
	case errors.Is(err, producer.ErrSessionNotFound):
		writeProblem(w, http.StatusNotFound, "", noSession(req.Session))
		return
	case errors.Is(err, producer.ErrSessionLost), errors.Is(err, producer.ErrSessionClosed):
		a.sessionEnded(w, r, owner, req.Session, err)
		return
	case err != nil:
		a.internal(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/executions/"+id)
	status = http.StatusAccepted
	if !created {
		status = http.StatusOK
	}
	writeJSON(w, status, submitted{ExecutionID: id})
}

// readBody reads a JSON body of at most MaxBodyBytes; ok is false (and
// the problem written) when the body is not JSON or is too large.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		writeProblem(w, http.StatusUnsupportedMediaType, "", "the body must be application/json, not "+strconv.Quote(ct))
		return nil, false
	}
	if r.ContentLength > a.cfg.MaxBodyBytes {
		writeProblem(w, http.StatusRequestEntityTooLarge, "", a.tooLarge())
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeProblem(w, http.StatusRequestEntityTooLarge, "", a.tooLarge())
		return nil, false
	}
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "", "reading the body: "+err.Error())
		return nil, false
	}
	return body, true
}

// idempotencyKey puts the Idempotency-Key header, when given, into *id,
// the body's ID; ok is false (and a 422 written) when the two differ.
func idempotencyKey(w http.ResponseWriter, r *http.Request, id *string) bool {
	key := r.Header.Get(IdempotencyHeader)
	if key == "" {
		return true
	}
	if *id != "" && *id != key {
		invalid(w, fmt.Sprintf("the %s header %q and the body's id %q differ; give one, or the same", IdempotencyHeader, key, *id))
		return false
	}
	*id = key
	return true
}

// invalid answers a 422 whose one problem is msg.
func invalid(w http.ResponseWriter, msg string) {
	writeProblem(w, http.StatusUnprocessableEntity, problemValidation, msg, msg)
}

func (a *API) tooLarge() string {
	return fmt.Sprintf("the body is over %d bytes, the most this server takes", a.cfg.MaxBodyBytes)
}

// validate checks req as a worker with the API's limits would.
func (a *API) validate(req *tasks.ExecRequest) error {
	if err := req.Check(); err != nil {
		return err
	}
	payload, err := tasks.EncodeRequest(req)
	if err != nil {
		return err
	}
	return req.Validate(a.cfg.Limits, len(payload))
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// decodeSubmission reads a submission: a tasks.ExecRequest's JSON, whose
// stdin and file contents are base64, or given as text in "stdinText" and
// a file's "text". A field the request does not know is refused. The
// status is the one to answer with when it fails: 400 for a body that is
// not JSON, 422 for JSON that is not a valid request.
func decodeSubmission(body []byte) (*tasks.ExecRequest, int, error) {
	top, status, err := decodeObject(body)
	if err != nil {
		return nil, status, err
	}
	changed, err := textInput(top, "stdinText", "stdin", "")
	if err != nil {
		return nil, http.StatusUnprocessableEntity, err
	}
	filesChanged, err := textFiles(top)
	if err != nil {
		return nil, http.StatusUnprocessableEntity, err
	}
	if changed || filesChanged {
		if body, err = json.Marshal(top); err != nil {
			return nil, http.StatusUnprocessableEntity, err
		}
	}
	req, err := tasks.DecodeRequestStrict(body)
	if err != nil {
		return nil, http.StatusUnprocessableEntity, fmt.Errorf("the body is not a valid execution request: %w", err)
	}
	return req, 0, nil
}

// decodeObject reads a body that must be a JSON object, its members left
// undecoded; the status is 400 for a body that is not JSON, 422 for JSON
// that is not an object.
func decodeObject(body []byte) (map[string]json.RawMessage, int, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, http.StatusBadRequest, fmt.Errorf("the body is not JSON: %w", err)
		}
		return nil, http.StatusUnprocessableEntity, fmt.Errorf("the body is not a JSON object: %w", err)
	}
	if top == nil {
		return nil, http.StatusUnprocessableEntity, errors.New("the body is not a JSON object")
	}
	return top, 0, nil
}

// textFiles replaces the "text" of each of top's files with its
// "content" in base64, as textInput does; it reports whether top changed.
func textFiles(top map[string]json.RawMessage) (bool, error) {
	raw, ok := top["files"]
	if !ok || isNull(raw) {
		return false, nil
	}
	var files []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &files); err != nil {
		return false, fmt.Errorf("files: %w", err)
	}
	changed := false
	for i, f := range files {
		c, err := textInput(f, "text", "content", fmt.Sprintf("files[%d].", i))
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	if !changed {
		return false, nil
	}
	enc, err := json.Marshal(files)
	if err != nil {
		return false, fmt.Errorf("files: %w", err)
	}
	top["files"] = enc
	return true, nil
}

// textInput replaces obj[textKey], a string, with obj[base64Key], its
// bytes in base64; both given is an error. It reports whether obj changed.
func textInput(obj map[string]json.RawMessage, textKey, base64Key, where string) (bool, error) {
	raw, ok := obj[textKey]
	if !ok {
		return false, nil
	}
	delete(obj, textKey)
	if isNull(raw) {
		return true, nil
	}
	if b, ok := obj[base64Key]; ok && !isNull(b) {
		return false, fmt.Errorf("%s%s and %s%s are both given; give the input one way", where, textKey, where, base64Key)
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		return false, fmt.Errorf("%s%s is not a string", where, textKey)
	}
	enc, err := json.Marshal(base64.StdEncoding.EncodeToString([]byte(text)))
	if err != nil {
		return false, err
	}
	obj[base64Key] = enc
	return true, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "", "encode the answer: "+err.Error())
		return
	}
	writeRawJSON(w, status, body)
}

func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// identify gives a request body its ID (its Idempotency-Key, or a new
// UUID, where the body has none) and the token's owner, refusing an owner
// the body sets itself. It answers and returns false when it refuses.
func identify(w http.ResponseWriter, r *http.Request, id, bodyOwner *string, owner string) bool {
	if !idempotencyKey(w, r, id) {
		return false
	}
	if *id == "" {
		*id = uuid.NewString()
	}
	if *bodyOwner != "" && *bodyOwner != owner {
		invalid(w, "owner is set by the server, from the bearer token; leave it out")
		return false
	}
	*bodyOwner = owner
	return true
}
