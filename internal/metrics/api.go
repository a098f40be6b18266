package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// API holds the HTTP API's metrics. A nil *API records nothing.
type API struct {
	requests    *prometheus.CounterVec
	streams     prometheus.Gauge
	hubReaders  prometheus.Gauge
	hubLags     prometheus.Counter
	hubWatching prometheus.Gauge
}

// NewAPI registers the HTTP API's metrics in r; a registry holds one API's.
func NewAPI(r *Registry) *API {
	f := promauto.With(r.reg)
	return &API{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "requests_total",
			Help: "HTTP API requests answered, by route and status code.",
		}, []string{"route", "code"}),
		streams: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "api", Name: "event_streams",
			Help: "Event streams (SSE or NDJSON) open now.",
		}),
		hubReaders: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "api", Name: "hub_reader_connections",
			Help: "Redis connections the stream hub's readers hold now.",
		}),
		hubLags: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "hub_lagged_total",
			Help: "Times a subscriber's buffer was full and it went back to reading from its last event.",
		}),
		hubWatching: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "api", Name: "hub_subscriptions",
			Help: "Subscriptions to executions' streams the hub serves now (event streams and long polls).",
		}),
	}
}

// Request counts one answered request.
func (m *API) Request(route string, code int) {
	if m != nil {
		m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	}
}

// StreamOpened and StreamClosed track the open event streams.
func (m *API) StreamOpened() {
	if m != nil {
		m.streams.Inc()
	}
}

// StreamClosed is the end of a stream StreamOpened counted.
func (m *API) StreamClosed() {
	if m != nil {
		m.streams.Dec()
	}
}

// HubConnected and HubDisconnected track the hub readers' connections.
func (m *API) HubConnected() {
	if m != nil {
		m.hubReaders.Inc()
	}
}

// HubDisconnected is the close of a connection HubConnected counted.
func (m *API) HubDisconnected() {
	if m != nil {
		m.hubReaders.Dec()
	}
}

// HubLagged counts a subscriber sent back to reading from its last event.
func (m *API) HubLagged() {
	if m != nil {
		m.hubLags.Inc()
	}
}

// HubSubscriptions adds d to the subscriptions the hub serves.
func (m *API) HubSubscriptions(d int) {
	if m != nil {
		m.hubWatching.Add(float64(d))
	}
}
