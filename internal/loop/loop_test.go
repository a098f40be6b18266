package loop

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/execq/execq/internal/clock"
	"github.com/execq/execq/internal/testutil"
)

func TestPassesAtEachTickAndStopWaits(t *testing.T) {
	fake := clock.NewFake(time.Unix(0, 0))
	passes := make(chan struct{})
	release := make(chan struct{})
	var logs testutil.Buffer
	l := New(Config{
		What:  "count",
		Every: time.Second,
		Clock: fake,
		Pass: func(ctx context.Context) error {
			passes <- struct{}{}
			<-release
			return errors.New("boom")
		},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	l.Start(context.Background())
	fake.Advance(999 * time.Millisecond)
	select {
	case <-passes:
		t.Fatal("a pass ran before the interval")
	case <-time.After(20 * time.Millisecond):
	}
	fake.Advance(time.Millisecond)
	<-passes
	release <- struct{}{}
	fake.Advance(time.Second)
	<-passes
	release <- struct{}{}
	// The failed passes are logged, with what they do.
	testutil.Eventually(t, 10*time.Second, time.Millisecond, "the failed pass is logged", func() bool {
		return strings.Contains(logs.String(), "count failed")
	})

	fake.Advance(time.Second)
	<-passes
	stopped := make(chan struct{})
	go func() { l.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a pass was running")
	case <-time.After(20 * time.Millisecond):
	}
	release <- struct{}{}
	<-stopped
	if fake.Tickers() != 0 {
		t.Errorf("%d tickers left after Stop", fake.Tickers())
	}
}

func TestStopEndsThePassAndIsNotLogged(t *testing.T) {
	fake := clock.NewFake(time.Unix(0, 0))
	started := make(chan struct{})
	var logs testutil.Buffer
	l := New(Config{
		What:  "wait",
		Every: time.Second,
		Clock: fake,
		Pass: func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	l.Start(context.Background())
	fake.Advance(time.Second)
	<-started
	l.Stop()
	if s := logs.String(); s != "" {
		t.Errorf("a pass ended by Stop was logged: %s", s)
	}
}

func TestTimeoutBoundsAPass(t *testing.T) {
	fake := clock.NewFake(time.Unix(0, 0))
	errs := make(chan error, 1)
	l := New(Config{
		What:    "slow",
		Every:   time.Second,
		Timeout: 10 * time.Millisecond,
		Clock:   fake,
		Pass: func(ctx context.Context) error {
			<-ctx.Done()
			errs <- ctx.Err()
			return ctx.Err()
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	l.Start(context.Background())
	defer l.Stop()
	fake.Advance(time.Second)
	if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("pass ended with %v, want its deadline", err)
	}
}

func TestStopWithoutStart(t *testing.T) {
	New(Config{Every: time.Second, Pass: func(context.Context) error { return nil }}).Stop()
}
