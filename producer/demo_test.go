package producer_test

import (
	"context"
	"log/slog"
	"sync"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/execq/execq/worker"
	"github.com/execq/execq/worker/workertest"
)

var (
	demoOnce sync.Once
	demoURL  string
)

// demoRedis starts, once per test binary, an in-memory Redis served by a
// worker on the fake runtime, and returns its URL. It lives until the test
// binary exits.
func demoRedis() string {
	demoOnce.Do(func() {
		mr, err := miniredis.Run()
		if err != nil {
			panic(err)
		}
		client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		w, err := workertest.New(worker.Config{
			Redis:    client,
			Name:     "demo",
			Image:    "demo",
			PoolSize: 2,
			Logger:   slog.New(slog.DiscardHandler),
		})
		if err != nil {
			panic(err)
		}
		if err := w.Start(context.Background()); err != nil {
			panic(err)
		}
		demoURL = "redis://" + mr.Addr() + "/0"
	})
	return demoURL
}
