package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/internal/sandbox/agentrt"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// PhaseHTTP names the HTTP API's phases (Config.Phases).
const PhaseHTTP = "http"

// HTTPFigures are the HTTP API's figures: its latency over the Go client's
// in the same run, alternately; many event streams held by one `execq
// serve`; a burst of submissions.
type HTTPFigures struct {
	// SubmitWaitGo is Submit→Wait of `true` through the Go client;
	// SubmitWaitHTTP is POST /v1/executions then GET ?wait= to the result.
	SubmitWaitGo   Latency `json:"submitWaitGo"`
	SubmitWaitHTTP Latency `json:"submitWaitHTTP"`
	// SubmitWaitDeltaP50 is the HTTP p50 minus the Go client's, in ms.
	SubmitWaitDeltaP50 float64 `json:"submitWaitDeltaP50Ms"`
	// FirstByteGo is Submit→the first stdout event of `echo hi` through
	// Follow; FirstByteHTTP is POST then GET /events to the first stdout
	// event.
	FirstByteGo       Latency  `json:"firstByteGo"`
	FirstByteHTTP     Latency  `json:"firstByteHTTP"`
	FirstByteDeltaP50 float64  `json:"firstByteDeltaP50Ms"`
	Streams           Streams  `json:"streams"`
	Burst             APIBurst `json:"burst"`
}

// Streams are many SSE streams of queued executions open on one serve
// process, then all canceled.
type Streams struct {
	N int `json:"n"`
	// OpenSeconds is the time to open all of them (every response's
	// headers in, the server counting them open).
	OpenSeconds float64 `json:"openSeconds"`
	// ServeRSSMB is the serve process's RSS before and with them open.
	ServeIdleRSSMB float64 `json:"serveIdleRSSMB"`
	ServeRSSMB     float64 `json:"serveRSSMB"`
	// RedisConnsHub and RedisConnsPool are the serve process's Redis
	// connections with them open (CLIENT LIST, by client name): the hub's
	// readers and its pool.
	RedisConnsHub  int `json:"redisConnsHub"`
	RedisConnsPool int `json:"redisConnsPool"`
	// Ended is how many got their exit event after all were canceled, in
	// EndSeconds.
	Ended      int     `json:"ended"`
	EndSeconds float64 `json:"endSeconds"`
}

// APIBurst is a burst of POSTs at once: each must get one ID, and each
// execution one result from one attempt.
type APIBurst struct {
	N           int     `json:"n"`
	Accepted    int     `json:"accepted"`
	Failed      int     `json:"failed"`
	DistinctIDs int     `json:"distinctIds"`
	Results     int     `json:"results"`
	Succeeded   int     `json:"succeeded"`
	Started     int     `json:"startedEvents"`
	Seconds     float64 `json:"seconds"`
}

// streamsN is the number of event streams held at once.
const streamsN = 1000

// apiBurstN is the number of POSTs of the burst.
const apiBurstN = 500

// runHTTP measures the HTTP API's phases against a worker of the default
// runtime and an `execq serve` process, both children of the benchmark.
func (r *Report) runHTTP(ctx context.Context, client *producer.Client, redisSrv *harness.RedisServer, dir string, cfg Config, progress func(string, ...any)) error {
	w, err := startWorker(ctx, cfg.Exe, redisSrv.URL, dir, 4, cfg.workerArgs(agentrt.Name)...)
	if err != nil {
		return err
	}
	defer stopWorker(w)
	srv, err := startServe(ctx, cfg.Exe, redisSrv.URL, dir)
	if err != nil {
		return err
	}
	defer srv.stop()
	h := &HTTPFigures{}
	api := &apiClient{base: srv.base, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}

	progress("http: Submit→Wait of true and Submit→first byte of echo hi, %d each through the Go client and through HTTP, alternately", cfg.Samples)
	if err := h.latencies(ctx, client, api, cfg.Samples); err != nil {
		return err
	}
	progress("http: %d event streams held by one serve process", streamsN)
	if err := h.streams(ctx, client, redisSrv, srv, streamsN); err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	progress("http: a burst of %d POSTs at once", apiBurstN)
	if err := h.burst(ctx, redisSrv, srv.base, apiBurstN); err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	r.HTTP = h
	return nil
}

// serveProc is an `execq serve` child process.
type serveProc struct {
	cmd    *exec.Cmd
	base   string
	exited chan struct{}
}

func startServe(ctx context.Context, exe, redisURL, dir string) (*serveProc, error) {
	addr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	// The client name tells serve's own connections from the others in
	// CLIENT LIST; its hub's readers name theirs.
	url := redisURL + "?client_name=execq-serve"
	cmd := exec.Command(exe, "serve", "--redis", url, "--addr", addr,
		"--api-rate", "1000000", "--api-burst", "1000000", "--api-max-streams", "100000")
	cmd.Env = append(os.Environ(), "EXECQ_API_TOKENS=")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start execq serve: %w", err)
	}
	s := &serveProc{cmd: cmd, base: "http://" + addr, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	up := func() bool {
		resp, err := http.Get(s.base + "/v1/openapi.json")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if err := harness.Await(ctx, 30*time.Second, 20*time.Millisecond, up); err != nil {
		s.stop()
		b, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
		return nil, fmt.Errorf("execq serve did not answer: %w\n%s", err, b)
	}
	return s, nil
}

func (s *serveProc) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// metric reads one unlabelled metric of the serve process.
func (s *serveProc) metric(name string) (float64, error) {
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no metric %s", name)
}

// apiClient is the benchmark's HTTP client of the API.
type apiClient struct {
	base string
	http *http.Client
}

func (c *apiClient) submit(ctx context.Context, body string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/v1/executions", strings.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", resp.StatusCode, err
	}
	var s struct {
		ExecutionID string `json:"executionId"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &s) != nil {
		return "", resp.StatusCode, fmt.Errorf("POST /v1/executions: %d %s", resp.StatusCode, b)
	}
	return s.ExecutionID, resp.StatusCode, nil
}

// wait long-polls the result of id.
func (c *apiClient) wait(ctx context.Context, id string) (*tasks.Result, error) {
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/executions/"+id+"?wait=60s", nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		switch resp.StatusCode {
		case http.StatusAccepted:
			continue
		case http.StatusOK:
			var res tasks.Result
			if err := json.Unmarshal(b, &res); err != nil {
				return nil, err
			}
			return &res, nil
		}
		return nil, fmt.Errorf("GET /v1/executions/%s: %d %s", id, resp.StatusCode, b)
	}
}

// events opens the event stream of id.
func (c *apiClient) events(ctx context.Context, id string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/executions/"+id+"/events", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("GET /v1/executions/%s/events: %d %s", id, resp.StatusCode, b)
	}
	return resp, nil
}

// untilEvent reads SSE lines until an event of type typ.
func untilEvent(body io.Reader, typ string) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 16<<20)
	want := "event: " + typ
	for sc.Scan() {
		if sc.Text() == want {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("the stream ended without a %s event", typ)
}

func (h *HTTPFigures) latencies(ctx context.Context, client *producer.Client, api *apiClient, n int) error {
	httpWait := func() error {
		id, _, err := api.submit(ctx, `{"cmd":["true"]}`)
		if err != nil {
			return err
		}
		res, err := api.wait(ctx, id)
		if err == nil && res.Status != tasks.StatusSucceeded {
			err = fmt.Errorf("true ended %s: %s", res.Status, res.Error)
		}
		return err
	}
	goWait := func() error {
		res, err := submitWait(ctx, client, tasks.ExecRequest{Cmd: []string{"true"}})
		if err == nil && res.Status != tasks.StatusSucceeded {
			err = fmt.Errorf("true ended %s: %s", res.Status, res.Error)
		}
		return err
	}
	httpFirst := func() error {
		id, _, err := api.submit(ctx, `{"cmd":["echo","hi"]}`)
		if err != nil {
			return err
		}
		resp, err := api.events(ctx, id)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return untilEvent(resp.Body, "stdout")
	}
	goFirst := func() error {
		id, err := client.Submit(ctx, tasks.ExecRequest{Cmd: []string{"echo", "hi"}})
		if err != nil {
			return err
		}
		for ev, err := range client.Follow(ctx, id, "") {
			if err != nil {
				return err
			}
			if ev.Type == tasks.EventStdout {
				return nil
			}
		}
		return errors.New("echo hi streamed no output")
	}
	for range 5 {
		for _, f := range []func() error{goWait, httpWait, goFirst, httpFirst} {
			if err := f(); err != nil {
				return err
			}
		}
	}
	var gw, hw, gf, hf []time.Duration
	timed := func(f func() error, into *[]time.Duration) error {
		t := time.Now()
		if err := f(); err != nil {
			return err
		}
		*into = append(*into, time.Since(t))
		return nil
	}
	for i := range n {
		// Alternate which goes first, so that neither always follows the
		// other's cleanup.
		order := []func() error{
			func() error { return timed(goWait, &gw) }, func() error { return timed(httpWait, &hw) },
			func() error { return timed(goFirst, &gf) }, func() error { return timed(httpFirst, &hf) },
		}
		if i%2 == 1 {
			order[0], order[1], order[2], order[3] = order[1], order[0], order[3], order[2]
		}
		for _, f := range order {
			if err := f(); err != nil {
				return err
			}
		}
	}
	h.SubmitWaitGo, h.SubmitWaitHTTP = summarize(gw), summarize(hw)
	h.FirstByteGo, h.FirstByteHTTP = summarize(gf), summarize(hf)
	h.SubmitWaitDeltaP50 = roundMs(h.SubmitWaitHTTP.P50 - h.SubmitWaitGo.P50)
	h.FirstByteDeltaP50 = roundMs(h.FirstByteHTTP.P50 - h.FirstByteGo.P50)
	return nil
}

// streams opens n event streams of executions queued where no worker
// serves, reads the serve process's memory and Redis connections, then
// cancels them all and counts the streams that end with their exit.
func (h *HTTPFigures) streams(ctx context.Context, client *producer.Client, redisSrv *harness.RedisServer, srv *serveProc, n int) error {
	s := &h.Streams
	s.N = n
	rss, _, err := harness.ProcMemory(srv.cmd.Process.Pid)
	if err != nil {
		return err
	}
	s.ServeIdleRSSMB = mib(rss)
	ids := make([]string, n)
	for i := range ids {
		if ids[i], err = client.Submit(ctx, tasks.ExecRequest{Queue: "bench-idle", Cmd: []string{"true"}}); err != nil {
			return err
		}
	}
	api := &apiClient{base: srv.base, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	bodies := make([]io.ReadCloser, n)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := api.events(sctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				return
			}
			bodies[i] = resp.Body
		}()
	}
	wg.Wait()
	defer func() {
		for _, b := range bodies {
			if b != nil {
				b.Close()
			}
		}
	}()
	if firstErr != nil {
		return firstErr
	}
	open := func() bool {
		v, err := srv.metric("execq_api_hub_subscriptions")
		return err == nil && int(v) == n
	}
	if err := harness.Await(ctx, time.Minute, 10*time.Millisecond, open); err != nil {
		return fmt.Errorf("the hub did not count %d subscriptions: %w", n, err)
	}
	s.OpenSeconds = roundMs(time.Since(start).Seconds())
	if rss, _, err = harness.ProcMemory(srv.cmd.Process.Pid); err != nil {
		return err
	}
	s.ServeRSSMB = mib(rss)
	list, err := redisSrv.Client.ClientList(ctx).Result()
	if err != nil {
		return err
	}
	for line := range strings.Lines(list) {
		switch {
		case strings.Contains(line, " name=execq-api-stream-reader "):
			s.RedisConnsHub++
		case strings.Contains(line, " name=execq-serve "):
			s.RedisConnsPool++
		}
	}

	// Every stream gets its exit: the hub delivers to all of them.
	ended := make(chan bool, n)
	for _, b := range bodies {
		go func() { ended <- untilEvent(b, "exit") == nil }()
	}
	start = time.Now()
	for _, id := range ids {
		if err := client.Cancel(ctx, id); err != nil {
			return err
		}
	}
	for range n {
		select {
		case ok := <-ended:
			if ok {
				s.Ended++
			}
		case <-time.After(time.Minute):
			return fmt.Errorf("%d of %d streams ended within a minute of the cancels", s.Ended, n)
		}
	}
	s.EndSeconds = roundMs(time.Since(start).Seconds())
	return nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// burst POSTs n executions of true at once, long-polls their results, then
// checks that each accepted one has exactly one result, from one attempt
// (one started event in its stream).
func (h *HTTPFigures) burst(ctx context.Context, redisSrv *harness.RedisServer, base string, n int) error {
	b := &h.Burst
	b.N = n
	api := &apiClient{base: base, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}}
	ids := make([]string, n)
	var wg sync.WaitGroup
	start := time.Now()
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			id, _, err := api.submit(ctx, `{"cmd":["true"]}`)
			if err == nil {
				ids[i] = id
			}
		}()
	}
	close(gate)
	wg.Wait()
	distinct := map[string]bool{}
	for _, id := range ids {
		if id == "" {
			b.Failed++
			continue
		}
		b.Accepted++
		distinct[id] = true
	}
	b.DistinctIDs = len(distinct)
	results := make(chan *tasks.Result, len(distinct))
	for id := range distinct {
		go func() {
			res, err := api.wait(ctx, id)
			if err != nil {
				res = nil
			}
			results <- res
		}()
	}
	for range distinct {
		res := <-results
		if res == nil {
			continue
		}
		b.Results++
		if res.Status == tasks.StatusSucceeded {
			b.Succeeded++
		}
	}
	b.Seconds = roundMs(time.Since(start).Seconds())
	keys := tasks.Keys{}
	for id := range distinct {
		msgs, err := redisSrv.Client.XRange(ctx, keys.Stream(id), "-", "+").Result()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if t, _ := m.Values[tasks.FieldType].(string); t == string(tasks.EventStarted) {
				b.Started++
			}
		}
	}
	if b.Accepted != n || b.DistinctIDs != n || b.Results != n || b.Started != n {
		return fmt.Errorf("of %d POSTs: %d accepted, %d distinct IDs, %d results, %d started events", n, b.Accepted, b.DistinctIDs, b.Results, b.Started)
	}
	return nil
}

// markdown writes the HTTP API's figures.
func (h *HTTPFigures) markdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n| HTTP API against the Go client, alternately | n | p50 | p90 | p99 |\n|---|---|---|---|---|\n")
	row := func(name string, l Latency) {
		p("| %s | %d | %.2f ms | %.2f ms | %.2f ms |\n", name, l.N, l.P50, l.P90, l.P99)
	}
	row("Submit→Wait of `true`, Go client", h.SubmitWaitGo)
	row("Submit→Wait of `true`, HTTP (POST, GET ?wait=)", h.SubmitWaitHTTP)
	row("Submit→first stdout byte of `echo hi`, Go client", h.FirstByteGo)
	row("Submit→first stdout byte of `echo hi`, HTTP (POST, GET /events)", h.FirstByteHTTP)
	p("\nThe API adds %.2f ms to Submit→Wait and %.2f ms to Submit→first byte (p50).\n", h.SubmitWaitDeltaP50, h.FirstByteDeltaP50)
	s := h.Streams
	p("\n| %d event streams on one `execq serve` | |\n|---|---|\n", s.N)
	p("| opened in | %.2f s |\n| serve RSS idle → with them open | %.1f MiB → %.1f MiB |\n", s.OpenSeconds, s.ServeIdleRSSMB, s.ServeRSSMB)
	p("| serve's Redis connections: stream readers + pool | %d + %d |\n", s.RedisConnsHub, s.RedisConnsPool)
	p("| streams that got their exit after all were canceled | %d of %d, in %.2f s |\n", s.Ended, s.N, s.EndSeconds)
	b := h.Burst
	p("\n| burst of %d POSTs at once | |\n|---|---|\n", b.N)
	p("| accepted (202), failed | %d, %d |\n| distinct IDs | %d |\n| results, succeeded | %d, %d |\n| started events (one per execution: none ran twice) | %d |\n| POSTs to the last result | %.2f s |\n",
		b.Accepted, b.Failed, b.DistinctIDs, b.Results, b.Succeeded, b.Started, b.Seconds)
}
