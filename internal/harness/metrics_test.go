package harness_test

import (
	"strings"
	"testing"

	"github.com/execq/execq/internal/harness"
)

const exposition = `# HELP execq_pool_containers Containers of the pool by state.
# TYPE execq_pool_containers gauge
execq_pool_containers{state="busy"} 1
execq_pool_containers{state="idle"} 3
# HELP execq_engine_up Whether the container engine answers.
# TYPE execq_engine_up gauge
execq_engine_up 1
# HELP execq_executions_total Executions by status.
# TYPE execq_executions_total counter
execq_executions_total{queue="default",status="succeeded"} 7
execq_executions_total{queue="other",status="succeeded"} 2
# HELP execq_run_seconds How long commands ran.
# TYPE execq_run_seconds histogram
execq_run_seconds_bucket{le="+Inf"} 9
execq_run_seconds_sum 0.5
execq_run_seconds_count 9
`

func TestValue(t *testing.T) {
	t.Parallel()
	families, err := harness.ParseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		labels []string
		want   float64
		err    string
	}{
		{"execq_pool_containers", []string{"state", "idle"}, 3, ""},
		{"execq_pool_containers", []string{"state", "busy"}, 1, ""},
		{"execq_engine_up", nil, 1, ""},
		{"execq_executions_total", []string{"queue", "other"}, 2, ""},
		{"execq_executions_total", []string{"status", "succeeded", "queue", "default"}, 7, ""},
		{"execq_pool_containers", nil, 0, "2 samples"},
		{"execq_pool_containers", []string{"state", "creating"}, 0, "0 samples"},
		{"execq_pool", nil, 0, "not found"},
		{"execq_pool_containers", []string{"state"}, 0, "not name and value pairs"},
		{"execq_run_seconds", nil, 0, "not a counter or a gauge"},
	}
	for _, c := range cases {
		got, err := harness.Value(families, c.name, c.labels...)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("Value(%s, %q) = %v, %v; want %v", c.name, c.labels, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("Value(%s, %q) = %v, %v; want an error saying %q", c.name, c.labels, got, err, c.err)
		}
	}
}

func TestParseMetricsRefusesWhatIsNotTheTextFormat(t *testing.T) {
	t.Parallel()
	if _, err := harness.ParseMetrics(strings.NewReader("<html>not metrics</html>\n")); err == nil {
		t.Error("an HTML page parsed as metrics")
	}
}
