// Package redisaddr reads the Redis addresses every execq command and the
// Go client accept, and opens a client for each kind:
//
//	redis://[[user]:password@]host:port[/db][?option=value…]      one server
//	rediss://…                                                    the same over TLS
//	redis-cluster://[[user]:password@]host:port[,host:port…][?…]  a Redis Cluster, by seed nodes
//	redis-sentinel://[[user]:password@]host:port[,host:port…]/MASTER[/db][?…]
//	                                                              the master a Sentinel group names
//
// rediss-cluster:// and rediss-sentinel:// are the TLS forms. The options
// are go-redis's URL options (dial_timeout, read_timeout, pool_size, …);
// for Sentinel, the user and password are the master's and its replicas',
// and sentinel_username and sentinel_password those of the sentinels.
package redisaddr

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Kind is the topology an address names.
type Kind string

// The kinds of address.
const (
	Single   Kind = "single"
	Cluster  Kind = "cluster"
	Sentinel Kind = "sentinel"
)

// Addr is a parsed Redis address.
type Addr struct {
	Kind     Kind
	single   *redis.Options
	cluster  *redis.ClusterOptions
	failover *redis.FailoverOptions
	shown    string
}

// Parse reads raw. Its errors never show a password.
func Parse(raw string) (Addr, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Addr{}, errors.New("not a Redis URL: want redis://, rediss://, redis-cluster:// or redis-sentinel://")
	}
	a := Addr{shown: Redacted(raw)}
	tls := strings.HasPrefix(scheme, "rediss")
	base := "redis"
	if tls {
		base = "rediss"
	}
	var err error
	switch scheme {
	case "redis", "rediss":
		a.Kind = Single
		if a.single, err = redis.ParseURL(raw); err != nil {
			return Addr{}, cleanErr(err)
		}
	case "redis-cluster", "rediss-cluster":
		a.Kind = Cluster
		u, err := multiHost(base, rest, "")
		if err != nil {
			return Addr{}, err
		}
		if a.cluster, err = redis.ParseClusterURL(u); err != nil {
			return Addr{}, cleanErr(err)
		}
	case "redis-sentinel", "rediss-sentinel":
		a.Kind = Sentinel
		if a.failover, err = parseSentinel(base, rest); err != nil {
			return Addr{}, err
		}
	default:
		return Addr{}, fmt.Errorf("unknown scheme %q: want redis://, rediss://, redis-cluster:// or redis-sentinel://", scheme)
	}
	return a, nil
}

// Open returns a client of the address's kind.
func (a Addr) Open() redis.UniversalClient {
	switch a.Kind {
	case Cluster:
		return redis.NewClusterClient(a.cluster)
	case Sentinel:
		return redis.NewFailoverClient(a.failover)
	default:
		return redis.NewClient(a.single)
	}
}

// ErrClusterDedicated is returned by Dedicated for a Redis Cluster, whose
// blocking reads of many keys at once would span nodes.
var ErrClusterDedicated = errors.New("a dedicated connection to one server cannot be made to a Redis Cluster")

// Dedicated opens a client of a single connection, named name in CLIENT
// LIST, to the server (or the Sentinel group's master): for a reader that
// holds its connection in blocking reads.
func (a Addr) Dedicated(name string) (*redis.Client, error) {
	switch a.Kind {
	case Cluster:
		return nil, ErrClusterDedicated
	case Sentinel:
		o := *a.failover
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.ClientName = 1, 0, 1, name
		return redis.NewFailoverClient(&o), nil
	default:
		o := *a.single
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.ClientName = 1, 0, 1, name
		return redis.NewClient(&o), nil
	}
}

// String is the address as logs show it, without its password.
func (a Addr) String() string { return a.shown }

// Open parses raw and opens a client of its kind.
func Open(raw string) (redis.UniversalClient, error) {
	a, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	return a.Open(), nil
}

// Redacted is raw as messages show it: its passwords (in the userinfo,
// and the password and sentinel_password options) replaced by "xxxxx", and
// nothing of it when it is not a URL.
func Redacted(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "(not a URL)"
	}
	if at := strings.LastIndex(hostPart(rest), "@"); at >= 0 {
		user := rest[:at]
		if name, _, hasPassword := strings.Cut(user, ":"); hasPassword {
			user = name + ":xxxxx"
		}
		rest = user + rest[at:]
	}
	if before, query, ok := strings.Cut(rest, "?"); ok {
		opts := strings.Split(query, "&")
		for i, o := range opts {
			if k, _, _ := strings.Cut(o, "="); k == "password" || k == "sentinel_password" {
				opts[i] = k + "=xxxxx"
			}
		}
		rest = before + "?" + strings.Join(opts, "&")
	}
	return scheme + "://" + rest
}

// hostPart is the part of a URL after the scheme that holds the userinfo
// and hosts: up to the path or the query.
func hostPart(rest string) string {
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return rest[:i]
	}
	return rest
}

// multiHost rewrites userinfo@h1:p1,h2:p2[/path][?query] as go-redis
// reads several addresses: base://userinfo@h1:p1/path?query&addr=h2:p2.
func multiHost(base, rest, path string) (string, error) {
	hp := hostPart(rest)
	tail := rest[len(hp):]
	userinfo, hosts := "", hp
	if at := strings.LastIndex(hp, "@"); at >= 0 {
		userinfo, hosts = hp[:at+1], hp[at+1:]
	}
	addrs := strings.Split(hosts, ",")
	for _, h := range addrs {
		if _, _, err := net.SplitHostPort(h); err != nil || h == "" {
			return "", fmt.Errorf("address %q is not host:port", h)
		}
	}
	query := ""
	if i := strings.IndexByte(tail, '?'); i >= 0 {
		query = tail[i+1:]
		tail = tail[:i]
	}
	if path == "" {
		path = tail
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("options: %w", err)
	}
	for _, h := range addrs[1:] {
		q.Add("addr", h)
	}
	u := base + "://" + userinfo + addrs[0] + path
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	return u, nil
}

// parseSentinel reads userinfo@h1:p1,…/MASTER[/db][?query].
func parseSentinel(base, rest string) (*redis.FailoverOptions, error) {
	hp := hostPart(rest)
	tail := rest[len(hp):]
	path, query, _ := strings.Cut(tail, "?")
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if segs[0] == "" || len(segs) > 2 {
		return nil, errors.New("redis-sentinel:// wants the master's name as its path: redis-sentinel://host:port[,host:port…]/MASTER[/db]")
	}
	master, err := url.PathUnescape(segs[0])
	if err != nil {
		return nil, fmt.Errorf("master name: %w", err)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("options: %w", err)
	}
	sentinelUser, sentinelPassword := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	q.Set("master_name", master)
	// go-redis reads a failover URL's userinfo as the sentinels'; here it is
	// the master's, as in every other form.
	userinfo, hosts := "", hp
	if at := strings.LastIndex(hp, "@"); at >= 0 {
		userinfo, hosts = hp[:at], hp[at+1:]
	}
	if userinfo != "" {
		u, err := url.Parse("redis://" + userinfo + "@h")
		if err != nil {
			return nil, errors.New("the user and password do not parse")
		}
		if name := u.User.Username(); name != "" {
			q.Set("username", name)
		}
		if pw, ok := u.User.Password(); ok {
			q.Set("password", pw)
		}
	}
	db := ""
	if len(segs) == 2 {
		db = "/" + segs[1]
	}
	raw, err := multiHost(base, hosts+"?"+q.Encode(), db)
	if err != nil {
		return nil, err
	}
	o, err := redis.ParseFailoverURL(raw)
	if err != nil {
		return nil, cleanErr(err)
	}
	o.SentinelUsername, o.SentinelPassword = sentinelUser, sentinelPassword
	return o, nil
}

// cleanErr drops what url.Parse's errors quote of the URL, which may hold
// a password.
func cleanErr(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
