// Package webguard protects execq's web servers (the dashboard, the API)
// from the browser's ways in: a Host allow-list against DNS rebinding, and
// cross-origin checks (Origin, Sec-Fetch-Site) against cross-site requests
// that would pause queues, delete tasks or cancel executions.
package webguard

import (
	"net"
	"net/http"
	"strings"
)

// Config configures Wrap.
type Config struct {
	// Hosts are the host names requests may name in their Host header,
	// besides localhost and IP literals (which a rebinding DNS name cannot
	// be). Ports are ignored; matching ignores case.
	Hosts []string
}

// Wrap returns next behind the guard: a request whose Host is not allowed
// gets 403 (misdirected), and so does a state-changing request (any method
// but GET, HEAD and OPTIONS) that a browser sends from another origin.
// Clients that are not browsers send neither Origin nor Sec-Fetch-Site and
// are let through.
func Wrap(next http.Handler, cfg Config) http.Handler {
	allowed := map[string]bool{"localhost": true}
	for _, h := range cfg.Hosts {
		allowed[strings.ToLower(hostOnly(h))] = true
	}
	cross := http.NewCrossOriginProtection()
	cross.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused: state-changing requests must come from this server's own pages", http.StatusForbidden)
	}))
	guarded := cross.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(hostOnly(r.Host))
		if !allowed[host] && net.ParseIP(host) == nil {
			http.Error(w, "misdirected request: this server does not answer to host "+r.Host+" (allow it with --allowed-hosts)", http.StatusForbidden)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

// hostOnly strips a port and IPv6 brackets.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}
