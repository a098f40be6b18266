// Package metrics exposes what execq does as Prometheus metrics: the
// worker's executions, output, stream writes and container pool, and the
// queues' sizes and latency read through asynq's Inspector.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/execq/execq/tasks"
)

const namespace = "execq"

// durations in seconds, from a few milliseconds (an execution's overhead)
// to many minutes (long commands, long queues).
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// Registry holds one process's metrics. It is an http.Handler serving them.
type Registry struct {
	reg *prometheus.Registry
}

// NewRegistry returns a registry with Go runtime and process metrics.
func NewRegistry() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg}
}

// Register adds collectors.
func (r *Registry) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := r.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// ServeHTTP serves the metrics in the Prometheus exposition format.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}).ServeHTTP(w, req)
}

// Worker holds a worker's metrics; it implements worker.Observer.
type Worker struct {
	executions      *prometheus.CounterVec
	queueWait       prometheus.Histogram
	runTime         prometheus.Histogram
	outputBytes     *prometheus.CounterVec
	truncations     prometheus.Counter
	streamAppend    prometheus.Histogram
	streamErrors    prometheus.Counter
	replacements    *prometheus.CounterVec
	containerCreate prometheus.Histogram
	createErrors    prometheus.Counter
	coldStarts      *prometheus.CounterVec
	resets          prometheus.Histogram
	resetFailures   prometheus.Counter
	engineUp        prometheus.Gauge
	sessionsOpen    prometheus.Gauge
	sessionsCreated prometheus.Counter
	sessionsClosed  *prometheus.CounterVec
}

// NewWorker registers a worker's metrics in r; a registry holds one
// worker's.
func NewWorker(r *Registry) *Worker {
	f := promauto.With(r.reg)
	return &Worker{
		executions: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "executions_total",
			Help: "Executions that got their result, by status.",
		}, []string{"status"}),
		queueWait: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "queue_wait_seconds",
			Help:    "Time from submission to the start of the attempt that produced the result.",
			Buckets: durationBuckets,
		}),
		runTime: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "run_seconds",
			Help:    "Run time of commands, from start to the exit of their main process.",
			Buckets: durationBuckets,
		}),
		outputBytes: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "output_bytes_total",
			Help: "Bytes commands wrote, kept or not, by stream.",
		}, []string{"stream"}),
		truncations: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "output_truncations_total",
			Help: "Executions whose output went past their cap.",
		}),
		streamAppend: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "stream_write_seconds",
			Help:    "Latency of appending output events to Redis streams.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1},
		}),
		streamErrors: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "stream_write_errors_total",
			Help: "Failed appends of output events (each is retried).",
		}),
		replacements: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "container_replacements_total",
			Help: "Containers removed to be replaced, by cause.",
		}, []string{"cause"}),
		containerCreate: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "container_create_seconds",
			Help:    "Time to create and start a sandbox container.",
			Buckets: durationBuckets,
		}),
		createErrors: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "container_create_errors_total",
			Help: "Failed container creations.",
		}),
		coldStarts: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "container_cold_starts_total",
			Help: "Executions that found no idle container of their image, for which one was created, by image.",
		}, []string{"image"}),
		resets: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "sandbox_reset_seconds",
			Help:    "Time to reset a sandbox between executions (kill, empty, verify), as the worker sees it; on no execution's clock.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 15},
		}),
		resetFailures: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "sandbox_reset_failures_total",
			Help: "Resets that failed or could not be verified (each sandbox is replaced).",
		}),
		engineUp: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "engine_up",
			Help: "1 when the container engine answered the worker's last check.",
		}),
		sessionsOpen: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "sessions_open",
			Help: "Sessions this worker holds a sandbox for.",
		}),
		sessionsCreated: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "sessions_created_total",
			Help: "Sessions this worker opened.",
		}),
		sessionsClosed: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sessions_closed_total",
			Help: "Sessions this worker ended, by cause: closed, idle, lifetime, lost (its own, or a dead worker's it found).",
		}, []string{"cause"}),
	}
}

// SessionsOpen sets the gauge of the sessions the worker holds.
func (w *Worker) SessionsOpen(n int) { w.sessionsOpen.Set(float64(n)) }

// SessionOpened counts a session the worker opened.
func (w *Worker) SessionOpened() { w.sessionsCreated.Inc() }

// SessionClosed counts a session that ended, by cause.
func (w *Worker) SessionClosed(cause string) { w.sessionsClosed.WithLabelValues(cause).Inc() }

// ExecutionFinished counts a result.
func (w *Worker) ExecutionFinished(status tasks.Status, queued, ran time.Duration) {
	w.executions.WithLabelValues(string(status)).Inc()
	w.queueWait.Observe(queued.Seconds())
	if status != tasks.StatusRejected && status != tasks.StatusCanceled || ran > 0 {
		w.runTime.Observe(ran.Seconds())
	}
}

// OutputWritten counts output bytes.
func (w *Worker) OutputWritten(stdoutBytes, stderrBytes int64, truncated bool) {
	w.outputBytes.WithLabelValues("stdout").Add(float64(stdoutBytes))
	w.outputBytes.WithLabelValues("stderr").Add(float64(stderrBytes))
	if truncated {
		w.truncations.Inc()
	}
}

// StreamAppended observes an append's latency.
func (w *Worker) StreamAppended(d time.Duration, entries int, err error) {
	if err != nil {
		w.streamErrors.Inc()
		return
	}
	w.streamAppend.Observe(d.Seconds())
}

// ContainerReplaced counts a replacement.
func (w *Worker) ContainerReplaced(cause string) {
	w.replacements.WithLabelValues(cause).Inc()
}

// ContainerCreated observes a creation.
func (w *Worker) ContainerCreated(d time.Duration, err error) {
	if err != nil {
		w.createErrors.Inc()
		return
	}
	w.containerCreate.Observe(d.Seconds())
}

// ColdStart counts an execution that had a container created for it.
func (w *Worker) ColdStart(image string) {
	w.coldStarts.WithLabelValues(image).Inc()
}

// SandboxReset observes a reset.
func (w *Worker) SandboxReset(d time.Duration, err error) {
	if err != nil {
		w.resetFailures.Inc()
		return
	}
	w.resets.Observe(d.Seconds())
}

// EngineUp sets the engine gauge.
func (w *Worker) EngineUp(up bool) {
	if up {
		w.engineUp.Set(1)
	} else {
		w.engineUp.Set(0)
	}
}

// PoolCounts are a pool's container counts by state.
type PoolCounts struct {
	Idle, Busy, Resetting, Creating int
	// ByImage holds the counts of each image.
	ByImage map[string]ImageCounts
}

// ImageCounts are a pool's container counts of one image, and how many of
// it the pool keeps warm.
type ImageCounts struct {
	Idle, Busy, Resetting, Creating, Warm int
}

// PoolCollector reports a pool's container counts by state, in all and by
// image.
type PoolCollector struct {
	stats   func() PoolCounts
	desc    *prometheus.Desc
	byImage *prometheus.Desc
	warm    *prometheus.Desc
}

// NewPoolCollector reads counts from stats at each scrape.
func NewPoolCollector(stats func() PoolCounts) *PoolCollector {
	return &PoolCollector{
		stats: stats,
		desc: prometheus.NewDesc(namespace+"_pool_containers",
			"Containers held by the worker's pool, by state: idle (warm), busy, resetting, creating.",
			[]string{"state"}, nil),
		byImage: prometheus.NewDesc(namespace+"_pool_image_containers",
			"Containers held by the worker's pool, by image and state: idle (warm), busy, resetting, creating.",
			[]string{"image", "state"}, nil),
		warm: prometheus.NewDesc(namespace+"_pool_warm_target",
			"Idle containers the worker's pool keeps warm, by image (worker --warm).",
			[]string{"image"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.byImage
	ch <- c.warm
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for state, n := range map[string]int{"idle": s.Idle, "busy": s.Busy, "resetting": s.Resetting, "creating": s.Creating} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
	for image, is := range s.ByImage {
		for state, n := range map[string]int{"idle": is.Idle, "busy": is.Busy, "resetting": is.Resetting, "creating": is.Creating} {
			ch <- prometheus.MustNewConstMetric(c.byImage, prometheus.GaugeValue, float64(n), image, state)
		}
		ch <- prometheus.MustNewConstMetric(c.warm, prometheus.GaugeValue, float64(is.Warm), image)
	}
}
