package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/dashboard"
	"github.com/execq/execq/internal/rdb"
	"github.com/execq/execq/tasks"
)

type viewBundle struct {
	srv   *httptest.Server
	store *rdb.Store
	ctx   context.Context
	now   time.Time
}

func setupView(t *testing.T) *viewBundle {
	t.Helper()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { client.Close() })
	store := rdb.New(client, tasks.Keys{}, 0)
	now := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	h, err := dashboard.New(dashboard.Config{Redis: client, Store: store, Clock: clock.NewFake(now)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &viewBundle{srv: srv, store: store, ctx: ctx, now: now}
}

func (b *viewBundle) get(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get(b.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return resp.StatusCode
}

type listing struct {
	Finished []rdb.Summary      `json:"finished"`
	Next     string             `json:"next"`
	Counts   []rdb.MinuteCounts `json:"counts"`
}

// The view lists ended executions newest first, filtered by status, image,
// worker and queue, pages through them, and counts them by status per minute.
func TestExecutionViewListsAndCounts(t *testing.T) {
	t.Parallel()
	b := setupView(t)
	statuses := []tasks.Status{tasks.StatusSucceeded, tasks.StatusFailed, tasks.StatusTimedOut, tasks.StatusOOMKilled}
	for i := range 12 {
		res := &tasks.Result{ExecutionID: fmt.Sprintf("e%02d", i), Status: statuses[i%4], Image: []string{"execq-python:latest", "execq-sandbox:latest"}[i%2],
			Worker: []string{"w1", "w2", "w3"}[i%3], FinishedAt: b.now.Add(-time.Duration(12-i) * time.Minute)}
		if err := b.store.RecordFinished(b.ctx, res, []string{"default", "critical"}[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(l listing) string {
		var s []string
		for _, f := range l.Finished {
			s = append(s, f.ID)
		}
		return strings.Join(s, ",")
	}
	cases := []struct {
		query, want string
	}{
		{"", "e11,e10,e09,e08,e07,e06,e05,e04,e03,e02,e01,e00"},
		{"?status=failed", "e09,e05,e01"},
		{"?image=python", "e10,e08,e06,e04,e02,e00"},
		{"?worker=w2&queue=critical", "e07,e01"},
		{"?status=running", ""},
	}
	for _, c := range cases {
		var l listing
		if code := b.get(t, "/executions/api/list"+c.query, &l); code != http.StatusOK {
			t.Fatalf("list%s: %d", c.query, code)
		}
		if got := ids(l); got != c.want {
			t.Errorf("list%s: %s, want %s", c.query, got, c.want)
		}
	}

	var page listing
	b.get(t, "/executions/api/list?limit=5", &page)
	if ids(page) != "e11,e10,e09,e08,e07" || page.Next == "" {
		t.Fatalf("first page: %s next %q", ids(page), page.Next)
	}
	var rest listing
	b.get(t, "/executions/api/list?limit=5&before="+page.Next, &rest)
	if ids(rest) != "e06,e05,e04,e03,e02" {
		t.Errorf("second page: %s", ids(rest))
	}

	if len(page.Counts) != 60 {
		t.Fatalf("%d minutes of counts, want 60", len(page.Counts))
	}
	total := map[tasks.Status]int64{}
	for _, m := range page.Counts {
		for s, n := range m.Counts {
			total[s] += n
		}
	}
	if total[tasks.StatusSucceeded] != 3 || total[tasks.StatusOOMKilled] != 3 || len(total) != 4 {
		t.Errorf("counts over the hour: %v", total)
	}
	if last := page.Counts[59]; !last.Minute.Equal(b.now) {
		t.Errorf("last minute %s, want %s", last.Minute, b.now)
	}
}

func TestExecutionViewOfAnUnknownExecution(t *testing.T) {
	t.Parallel()
	b := setupView(t)
	if code := b.get(t, "/executions/api/executions/nope", nil); code != http.StatusNotFound {
		t.Errorf("unknown execution: %d, want 404", code)
	}
	if code := b.get(t, "/executions/api/executions/bad%20id", nil); code != http.StatusBadRequest {
		t.Errorf("invalid ID: %d, want 400", code)
	}
}

// The page is served, and asynqmon's pages carry the script that links a
// task's page to the view.
func TestExecutionViewPageAndAsynqmonLink(t *testing.T) {
	t.Parallel()
	b := setupView(t)
	for path, want := range map[string]string{
		"/executions/":                        "execq · executions",
		"/monitoring/":                        `<script src="/executions/asynqmon-link.js" defer></script></head>`,
		"/monitoring/queues/default/tasks/e1": `/executions/asynqmon-link.js`,
		"/executions/asynqmon-link.js":        "/executions/?id=",
	} {
		resp, err := http.Get(b.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body without %q", path, resp.StatusCode, want)
		}
	}
}
