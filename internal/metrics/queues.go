package metrics

import (
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// QueueInspector is the part of asynq's Inspector the queue collector uses.
type QueueInspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// QueueCollector reports every queue's task counts and latency at each
// scrape, read through asynq's Inspector.
type QueueCollector struct {
	insp    QueueInspector
	size    *prometheus.Desc
	latency *prometheus.Desc
	paused  *prometheus.Desc
	memory  *prometheus.Desc
	up      *prometheus.Desc
}

// NewQueueCollector reads the queues through insp.
func NewQueueCollector(insp QueueInspector) *QueueCollector {
	return &QueueCollector{
		insp: insp,
		size: prometheus.NewDesc(namespace+"_queue_tasks",
			"Tasks in a queue, by state (pending, active, scheduled, retry, archived, completed).",
			[]string{"queue", "state"}, nil),
		latency: prometheus.NewDesc(namespace+"_queue_latency_seconds",
			"Age of the oldest pending task of a queue.", []string{"queue"}, nil),
		paused: prometheus.NewDesc(namespace+"_queue_paused",
			"1 when the queue is paused.", []string{"queue"}, nil),
		memory: prometheus.NewDesc(namespace+"_queue_memory_bytes",
			"Redis memory used by a queue's tasks (sampled by asynq).", []string{"queue"}, nil),
		up: prometheus.NewDesc(namespace+"_queue_scrape_success",
			"1 when the queues could be read from Redis at this scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.latency
	ch <- c.paused
	ch <- c.memory
	ch <- c.up
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	queues, err := c.insp.Queues()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ok := 1.0
	for _, q := range queues {
		info, err := c.insp.GetQueueInfo(q)
		if err != nil {
			ok = 0
			continue
		}
		for state, n := range map[string]int{
			"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed,
		} {
			ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, info.Latency.Seconds(), q)
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused, q)
		ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, float64(info.MemoryUsage), q)
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, ok)
}
