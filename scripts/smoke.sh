#!/bin/sh
# The README's first steps, checked: a worker against a real redis-server,
# then `execq up` with a redis-server of its own; each must run
# `execq run -- sh -c 'echo hi; exit 3'`, print hi and exit 3; the first also
# says when output is cut and resumes a tail from an event's ID.
set -eu
bin="${1:-bin/execq}"
tmp="$(mktemp -d)"
pids=""
cleanup() {
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + $$ % 20000))
}

check_run() {
	url="$1"
	out="$("$bin" run --redis "$url" -- sh -c 'echo hi; exit 3')" && code=0 || code=$?
	if [ "$out" != "hi" ] || [ "$code" != 3 ]; then
		echo "smoke: execq run printed '$out' and exited $code; want 'hi' and 3" >&2
		exit 1
	fi
}

# A cut output is said so on stderr, and the exit code is the command's.
check_truncation() {
	url="$1"
	err="$("$bin" run --redis "$url" --max-output 1k -- sh -c 'head -c 5000 /dev/zero | tr "\0" x' 2>&1 >/dev/null)" && code=0 || code=$?
	case "$err" in
	*"execq: stdout truncated: printed 1KiB of 4.883KiB; --max-output raises the cap"*) ;;
	*)
		echo "smoke: a truncated run said '$err' on stderr" >&2
		exit 1
		;;
	esac
	if [ "$code" != 0 ]; then
		echo "smoke: a truncated run exited $code; want the command's 0" >&2
		exit 1
	fi
}

# tail --events gives each event's stream ID; tail --from resumes after it.
check_tail() {
	url="$1"
	id="$("$bin" submit --redis "$url" -- sh -c 'echo one; sleep 0.3; echo two')"
	events="$("$bin" tail --redis "$url" --events "$id")"
	first="$(echo "$events" | grep '"type":"stdout"' | head -n 1 | sed 's/.*"id":"\([^"]*\)".*/\1/')"
	rest="$("$bin" tail --redis "$url" --from "$first" "$id")"
	case "$events" in
	*'"type":"started"'*'"data":"one\n"'*'"data":"two\n"'*'"type":"exit"'*) ;;
	*)
		echo "smoke: tail --events printed '$events'" >&2
		exit 1
		;;
	esac
	if [ "$rest" != "two" ]; then
		echo "smoke: tail --from $first printed '$rest'; want 'two'" >&2
		exit 1
	fi
}

wait_ready() {
	url="$1"
	i=0
	until "$bin" run --redis "$url" --timeout 10s -- true >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 60 ]; then
			echo "smoke: no worker answered at $url; its log:" >&2
			cat "$tmp"/*.log >&2
			exit 1
		fi
		sleep 1
	done
}

port="$(free_port)"
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --maxmemory-policy noeviction >"$tmp/redis.log" 2>&1 &
pids="$pids $!"
"$bin" worker --redis "redis://127.0.0.1:$port/0" --pool-size 2 >"$tmp/worker.log" 2>&1 &
pids="$pids $!"
wait_ready "redis://127.0.0.1:$port/0"
check_run "redis://127.0.0.1:$port/0"
check_truncation "redis://127.0.0.1:$port/0"
check_tail "redis://127.0.0.1:$port/0"
echo "smoke: execq worker + redis-server: ok"

port="$(free_port)"
dport="$(free_port)"
"$bin" up --embedded-addr "127.0.0.1:$port" --dashboard-addr "127.0.0.1:$dport" --data-dir "$tmp/up-redis" --pool-size 2 >"$tmp/up.log" 2>&1 &
pids="$pids $!"
wait_ready "redis://127.0.0.1:$port/0"
check_run "redis://127.0.0.1:$port/0"
grep -q "started redis-server" "$tmp/up.log" || { echo "smoke: execq up did not start its own redis-server:" >&2; cat "$tmp/up.log" >&2; exit 1; }
echo "smoke: execq up (its own redis-server): ok"
