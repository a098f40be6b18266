package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/execq/execq/internal/harness"
	"github.com/execq/execq/producer"
	"github.com/execq/execq/tasks"
)

// PhaseSession names the session phase (Config.Phases).
const PhaseSession = "session"

// SessionFigures compare one execution in a session with a plain one, on
// one runtime, in the same run, alternately: Submit→Wait of `true`.
type SessionFigures struct {
	Runtime string  `json:"runtime"`
	Plain   Latency `json:"plain"`
	Session Latency `json:"session"`
	// RatioP50 is the session's p50 over the plain one's.
	RatioP50 float64 `json:"ratioP50"`
	// CreateSession is CreateSession→open, and CloseSession Close→closed
	// (the sandbox reset and back in the pool).
	CreateSession Latency `json:"createSession"`
	CloseSession  Latency `json:"closeSession"`
}

// runSession measures, per runtime, executions in a session against plain
// ones, and the cost of opening and closing a session.
func (r *Report) runSession(ctx context.Context, client *producer.Client, redisSrv *harness.RedisServer, dir string, cfg Config, progress func(string, ...any)) error {
	for _, name := range cfg.Runtimes {
		progress("session: %s: Submit→Wait of true, %d plain and %d in one session, alternately; %d sessions opened and closed", name, cfg.Samples, cfg.Samples, max(cfg.Samples/10, 3))
		w, err := startWorker(ctx, cfg.Exe, redisSrv.URL, dir, 4, cfg.workerArgs(name)...)
		if err != nil {
			return err
		}
		fig, err := sessionFigures(ctx, client, cfg.Samples)
		stopWorker(w)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fig.Runtime = name
		r.Sessions = append(r.Sessions, fig)
	}
	return nil
}

func sessionFigures(ctx context.Context, client *producer.Client, samples int) (SessionFigures, error) {
	var fig SessionFigures
	s, err := client.CreateSession(ctx, tasks.SessionRequest{})
	if err != nil {
		return fig, err
	}
	defer s.Close(context.WithoutCancel(ctx))
	req := tasks.ExecRequest{Cmd: []string{"true"}}
	var plain, inSession []time.Duration
	for i := range 2 * samples {
		start := time.Now()
		var res *tasks.Result
		if i%2 == 0 {
			id, err := client.Submit(ctx, req)
			if err != nil {
				return fig, err
			}
			res, err = client.Wait(ctx, id)
			if err != nil {
				return fig, err
			}
			plain = append(plain, time.Since(start))
		} else {
			res, err = s.Run(ctx, req)
			if err != nil {
				return fig, err
			}
			inSession = append(inSession, time.Since(start))
		}
		if res.Status != tasks.StatusSucceeded {
			return fig, fmt.Errorf("true: %s %s", res.Status, res.Error)
		}
	}
	fig.Plain, fig.Session = summarize(plain), summarize(inSession)
	if fig.Plain.P50 > 0 {
		fig.RatioP50 = fig.Session.P50 / fig.Plain.P50
	}
	var creates, closes []time.Duration
	for range max(samples/10, 3) {
		start := time.Now()
		o, err := client.CreateSession(ctx, tasks.SessionRequest{})
		if err != nil {
			return fig, err
		}
		creates = append(creates, time.Since(start))
		start = time.Now()
		if err := o.Close(ctx); err != nil {
			return fig, err
		}
		for {
			info, err := o.Info(ctx)
			if err != nil {
				return fig, err
			}
			if info.Status.Ended() {
				break
			}
			select {
			case <-ctx.Done():
				return fig, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		closes = append(closes, time.Since(start))
	}
	fig.CreateSession, fig.CloseSession = summarize(creates), summarize(closes)
	return fig, nil
}

func (r *Report) markdownSessions(w io.Writer) {
	if len(r.Sessions) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n| Submit→Wait of `true`, plain against in a session, alternately | n | plain p50 / p99 | in a session p50 / p99 | ratio of p50 | CreateSession p50 | Close → closed p50 |\n|---|---|---|---|---|---|---|\n")
	for _, s := range r.Sessions {
		p("| %s | %d | %.2f / %.2f ms | %.2f / %.2f ms | %.2f | %.1f ms | %.1f ms |\n", s.Runtime, s.Plain.N,
			s.Plain.P50, s.Plain.P99, s.Session.P50, s.Session.P99, s.RatioP50, s.CreateSession.P50, s.CloseSession.P50)
	}
}
