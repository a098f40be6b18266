package main

import (
	"os"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/execq/execq/internal/redisaddr"
	"github.com/execq/execq/producer"
)

// defaultRedisURL is where clients and workers look for Redis unless told.
const defaultRedisURL = "redis://127.0.0.1:6379/0"

// redisFlag is the root command's --redis, which every command that talks
// to Redis reads.
type redisFlag struct{ url string }

// register adds --redis to fs, defaulting to EXECQ_REDIS_URL, then to
// defaultRedisURL.
func (f *redisFlag) register(fs *pflag.FlagSet) {
	def := os.Getenv("EXECQ_REDIS_URL")
	if def == "" {
		def = defaultRedisURL
	}
	fs.StringVar(&f.url, "redis", def, "Redis address: redis://, redis-cluster://H:P,H:P or redis-sentinel://H:P,H:P/MASTER (env EXECQ_REDIS_URL)")
}

// given reports whether --redis or EXECQ_REDIS_URL names a Redis.
func (f *redisFlag) given(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("redis") || os.Getenv("EXECQ_REDIS_URL") != ""
}

// dialRedis connects to the Redis at raw, as every command does: one
// server, a Cluster or a Sentinel group (internal/redisaddr). An address
// that does not parse ends execq with 125; the message does not show its
// password.
func dialRedis(raw string) (redis.UniversalClient, error) {
	c, err := redisaddr.Open(raw)
	if err != nil {
		return nil, exitWith(exitExecqFailed, "--redis %s: %v", redacted(raw), err)
	}
	return c, nil
}

// dialClient is dialRedis for the commands that submit executions and
// read them; close closes the connection.
func dialClient(raw string) (client *producer.Client, close func(), err error) {
	rc, err := dialRedis(raw)
	if err != nil {
		return nil, nil, err
	}
	return producer.New(rc, producer.Options{}), func() { rc.Close() }, nil
}

// redacted is a Redis address as messages and logs show it: its
// passwords replaced.
func redacted(raw string) string { return redisaddr.Redacted(raw) }
