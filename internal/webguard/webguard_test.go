package webguard_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/execq/execq/internal/webguard"
)

func TestWrap(t *testing.T) {
	t.Parallel()
	h := webguard.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }),
		webguard.Config{Hosts: []string{"execq.example.com"}})
	cases := []struct {
		name    string
		method  string
		host    string
		headers map[string]string
		want    int
	}{
		{"local GET", "GET", "127.0.0.1:8080", nil, 204},
		{"localhost GET", "GET", "localhost:8080", nil, 204},
		{"IPv6 literal", "GET", "[::1]:8080", nil, 204},
		{"allowed name", "GET", "EXECQ.example.com", nil, 204},
		{"rebinding name", "GET", "attacker.example:8080", nil, 403},
		{"rebinding name, POST", "POST", "attacker.example", nil, 403},
		{"curl POST", "POST", "127.0.0.1:8080", nil, 204},
		{"same-origin POST", "POST", "127.0.0.1:8080", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8080"}, 204},
		{"cross-site POST", "POST", "127.0.0.1:8080", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, 403},
		{"cross-origin POST without fetch metadata", "POST", "127.0.0.1:8080", map[string]string{"Origin": "http://evil.example"}, 403},
		{"cross-origin DELETE", "DELETE", "localhost:8080", map[string]string{"Origin": "http://evil.example"}, 403},
		{"cross-site GET is a read", "GET", "127.0.0.1:8080", map[string]string{"Sec-Fetch-Site": "cross-site"}, 204},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://"+c.host+"/monitoring/api/queues/default:pause", nil)
		r.Host = c.host
		for k, v := range c.headers {
			r.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != c.want {
			t.Errorf("%s: %d, want %d (%s)", c.name, rec.Code, c.want, rec.Body.String())
		}
	}
}
