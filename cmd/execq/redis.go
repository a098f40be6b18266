package main

import (
	"errors"
	"net/url"
	"os"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	fs.StringVar(&f.url, "redis", def, "Redis URL (env EXECQ_REDIS_URL)")
}

// given reports whether --redis or EXECQ_REDIS_URL names a Redis.
func (f *redisFlag) given(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("redis") || os.Getenv("EXECQ_REDIS_URL") != ""
}

// dialRedis connects to the Redis at raw, as every command does. A URL
// that does not parse ends execq with 125; the message does not show its
// password.
func dialRedis(raw string) (*redis.Client, error) {
	opts, err := redis.ParseURL(raw)
	if err != nil {
		// url.Parse's errors quote the whole URL.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, exitWith(exitExecqFailed, "--redis %s: %v", redacted(raw), err)
	}
	return redis.NewClient(opts), nil
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

// redacted is a Redis URL as messages and logs show it: its password
// replaced (url.URL.Redacted); nothing of it when it does not parse.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	return u.Redacted()
}
