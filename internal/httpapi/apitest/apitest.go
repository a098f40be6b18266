// Package apitest checks HTTP traffic against the API's OpenAPI document
// (httpapi.OpenAPIDocument) with kin-openapi's openapi3filter: a
// RoundTripper that validates every request and its response, and a
// validating reverse proxy for clients that are not Go (curl, Python).
//
// A request the document refuses must be refused by the server with a 4xx
// the document lists; any other request's response must match the
// document. Event streams are checked event by event: SSE fields and NDJSON
// lines, each event's data against its schema.
package apitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/execq/execq/internal/httpapi"
)

// Validator checks requests and responses against the document.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
}

var registerDecoders sync.Once

// NewValidator loads and checks the document. The document is OpenAPI
// 3.1; openapi3filter validates a 3.1 document's schemas as JSON Schema
// 2020-12.
func NewValidator() (*Validator, error) {
	registerDecoders.Do(func() {
		asText := func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(body)
			return string(b), err
		}
		openapi3filter.RegisterBodyDecoder("text/event-stream", asText)
		openapi3filter.RegisterBodyDecoder(httpapi.NDJSON, asText)
		openapi3filter.RegisterBodyDecoder("text/plain", asText)
	})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPIDocument)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("the document is OpenAPI %s, not 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is not valid: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the OpenAPI document: %w", err)
	}
	return &Validator{doc: doc, router: router}, nil
}

func options() *openapi3filter.Options {
	return &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
}

// Transport returns a RoundTripper that sends through next (nil:
// http.DefaultTransport) and reports to t every request and response that
// does not match the document.
func Transport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	t.Helper()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{t: t, v: v, next: next}
}

// Client is an http.Client whose every request goes through Transport.
func Client(t testing.TB) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: Transport(t, tr)}
}

// Proxy serves a reverse proxy to target (the API's base URL) whose every
// request and response is checked as Transport checks them, for clients
// that are not Go; it returns the proxy's base URL. It streams responses
// as they come (events are flushed at once).
func Proxy(t testing.TB, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = Transport(t, tr)
	p.FlushInterval = -1
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

type transport struct {
	t    testing.TB
	v    *Validator
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	route, params, routeErr := tr.v.router.FindRoute(req)
	var input *openapi3filter.RequestValidationInput
	var reqErr error
	if routeErr != nil {
		reqErr = routeErr
	} else {
		check := req.Clone(req.Context())
		check.Body = io.NopCloser(bytes.NewReader(body))
		input = &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route, Options: options()}
		reqErr = openapi3filter.ValidateRequest(req.Context(), input)
	}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := tr.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	what := req.Method + " " + req.URL.RequestURI()
	if reqErr != nil && (resp.StatusCode < 400 || resp.StatusCode > 499) {
		tr.t.Errorf("openapi: %s is a request the document refuses (%v), yet the server answered %d", what, reqErr, resp.StatusCode)
	}
	if input == nil {
		// A path the document does not have: nothing to check it against
		// but that it was refused.
		return resp, nil
	}
	resp.Body = &checkedBody{tr: tr, what: what, input: input, resp: resp, body: resp.Body}
	return resp, nil
}

// checkedBody validates the response once it is read to its end or
// closed; a stream closed early is checked as far as it was read.
type checkedBody struct {
	tr    *transport
	what  string
	input *openapi3filter.RequestValidationInput
	resp  *http.Response
	body  io.ReadCloser
	buf   bytes.Buffer
	done  bool
	once  sync.Once
}

func (b *checkedBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.buf.Write(p[:n])
	if err == io.EOF {
		b.done = true
		b.check()
	}
	return n, err
}

func (b *checkedBody) Close() error {
	if !b.done && !isStream(b.resp.Header.Get("Content-Type")) {
		// A whole document is checked whole.
		_, _ = io.Copy(&b.buf, io.LimitReader(b.body, 64<<20))
		b.done = true
	}
	b.check()
	return b.body.Close()
}

func isStream(ct string) bool {
	return strings.HasPrefix(ct, "text/event-stream") || strings.HasPrefix(ct, httpapi.NDJSON)
}

func (b *checkedBody) check() {
	b.once.Do(func() {
		t := b.tr.t
		ct := b.resp.Header.Get("Content-Type")
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: b.input,
			Status:                 b.resp.StatusCode,
			Header:                 b.resp.Header,
			Options:                options(),
		}
		in.SetBodyBytes(b.buf.Bytes())
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("openapi: the response %d %s to %s does not match the document: %v\nbody: %.500s", b.resp.StatusCode, ct, b.what, err, b.buf.String())
		}
		switch {
		case strings.HasPrefix(ct, "text/event-stream"):
			for _, err := range b.tr.v.checkSSE(b.buf.String(), b.done) {
				t.Errorf("openapi: the events of %s: %v", b.what, err)
			}
		case strings.HasPrefix(ct, httpapi.NDJSON):
			for _, err := range b.tr.v.checkNDJSON(b.buf.String(), b.done) {
				t.Errorf("openapi: the NDJSON events of %s: %v", b.what, err)
			}
		}
	})
}

// dataSchemas names the schema of each event type's data.
var dataSchemas = map[string]string{
	"started": "StartedData",
	"stdout":  "OutputData",
	"stderr":  "OutputData",
	"exit":    "ExitData",
}

func (v *Validator) checkData(event string, data []byte) error {
	name, ok := dataSchemas[event]
	if !ok {
		return fmt.Errorf("event type %q is none of the document's", event)
	}
	var value any
	if err := json.Unmarshal(data, &value); err != nil {
		return fmt.Errorf("%s data %q is not JSON: %w", event, data, err)
	}
	return v.checkSchema(name, value)
}

func (v *Validator) checkSchema(name string, value any) error {
	ref := v.doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("the document has no schema %s", name)
	}
	if err := ref.Value.VisitJSON(value, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("%v does not match %s: %w", value, name, err)
	}
	return nil
}

// checkSSE checks each event of an SSE body: its fields, its ID, its
// data's schema. With complete false, a last event without its blank line
// is left out.
func (v *Validator) checkSSE(text string, complete bool) []error {
	var errs []error
	blocks := strings.Split(text, "\n\n")
	if !complete || !strings.HasSuffix(text, "\n\n") {
		blocks = blocks[:len(blocks)-1]
	}
	for _, block := range blocks {
		var id, event, data string
		var hasData bool
		for _, line := range strings.Split(block, "\n") {
			if strings.HasPrefix(line, ":") || line == "" {
				continue
			}
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				event = value
			case "data":
				if hasData {
					errs = append(errs, fmt.Errorf("event %q has more than one data line", block))
				}
				data, hasData = value, true
			default:
				errs = append(errs, fmt.Errorf("event %q has the field %q, which SSE does not know", block, field))
			}
		}
		if event == "" && !hasData && id == "" {
			continue // comments only
		}
		if id != "" {
			if err := v.checkSchema("EntryID", id); err != nil {
				errs = append(errs, err)
			}
		} else if event != "exit" {
			errs = append(errs, fmt.Errorf("event %q has no id", block))
		}
		if err := v.checkData(event, []byte(data)); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (v *Validator) checkNDJSON(text string, complete bool) []error {
	var errs []error
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 64<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if !complete && !strings.HasSuffix(text, "\n") && len(lines) > 0 {
		lines = lines[:len(lines)-1]
	}
	for _, line := range lines {
		var value any
		if err := json.Unmarshal([]byte(line), &value); err != nil {
			errs = append(errs, fmt.Errorf("line %q is not JSON: %w", line, err))
			continue
		}
		if err := v.checkSchema("EventLine", value); err != nil {
			errs = append(errs, err)
			continue
		}
		var ev httpapi.EventLine
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := v.checkData(string(ev.Event), ev.Data); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
