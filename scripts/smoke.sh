#!/bin/sh
# The README's first steps, checked: a worker against a real redis-server,
# then `execq up` with a redis-server of its own; each must run
# `execq run -- sh -c 'echo hi; exit 3'`, print hi and exit 3; the first also
# says when output is cut, resumes a tail from an event's ID, and runs the
# examples of the README's "Using it" section as written (its HTTP API's
# against an `execq serve`, with curl); the second also submits through the
# HTTP API that `execq up` serves on its dashboard address.
set -eu
bin="${1:-bin/execq}"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
readme="$(cd "$(dirname "$0")/.." && pwd)/README.md"
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

# The README's "Using it" section, up to the next section.
readme_section() {
	awk '/^## Using it$/ { on = 1; next } on && /^## / { exit } on' "$readme"
}

# Each flag of the section's synopsis (its sh block) is one that its
# command lists in --help.
check_synopsis() {
	readme_section | awk '/^```sh$/ { on = 1; next } on && /^```$/ { exit } on' >"$tmp/synopsis"
	[ -s "$tmp/synopsis" ] || { echo "smoke: no synopsis in the README's Using it section" >&2; exit 1; }
	while IFS= read -r line; do
		case "$line" in
		"execq "*) cmd="$(echo "$line" | awk '{ print $2 }')" ;;
		esac
		help="$("$bin" "$cmd" --help)"
		for flag in $(printf '%s\n' "$line" | sed 's/#.*//' | grep -o -- '--[a-z][a-z-]*' || true); do
			if ! printf '%s\n' "$help" | grep -Eq -- "^ +(-[a-zA-Z], )?$flag( |\$)"; then
				echo "smoke: the README's synopsis gives execq $cmd $flag, which execq $cmd --help does not list" >&2
				exit 1
			fi
		done
	done <"$tmp/synopsis"
}

# Whether the output in file $2 is what file $1 expects: the same lines,
# where "..." in an expected line stands for anything.
output_matches() {
	awk -v want="$1" -v got="$2" 'BEGIN {
		while ((getline line < want) > 0) w[nw++] = line
		while ((getline line < got) > 0) g[ng++] = line
		if (nw != ng) exit 1
		for (i = 0; i < nw; i++) {
			p = index(w[i], "...")
			if (p == 0) { if (w[i] != g[i]) exit 1; continue }
			head = substr(w[i], 1, p - 1); rest = substr(w[i], p + 3)
			if (length(g[i]) < length(head) + length(rest)) exit 1
			if (substr(g[i], 1, length(head)) != head) exit 1
			if (substr(g[i], length(g[i]) - length(rest) + 1) != rest) exit 1
		}
		exit 0
	}'
}

# Runs the console examples of the README's "Using it" section as written,
# one shell session in a directory of its own, with execq on the PATH and
# EXECQ_REDIS_URL at url, and checks that each prints (stdout and stderr)
# what the README shows after it.
check_readme_examples() {
	url="$1"
	readme_section | awk '
		/^```console$/ { on = 1; next }
		on && /^```$/ { on = 0; next }
		on && /^\$ / { print "$" substr($0, 3); next }
		on { print ">" $0 }
	' >"$tmp/examples"
	n="$(grep -c '^\$' "$tmp/examples" || true)"
	if [ "$n" -lt 10 ]; then
		echo "smoke: $n console examples in the README's Using it section; want them all found" >&2
		exit 1
	fi
	mkdir -p "$tmp/path" "$tmp/readme"
	ln -sf "$bin" "$tmp/path/execq"
	# The clients' examples name them relative to the repository.
	ln -sf "$(dirname "$readme")/examples" "$tmp/readme/examples"
	(
		cd "$tmp/readme"
		PATH="$tmp/path:$PATH"
		EXECQ_REDIS_URL="$url"
		export PATH EXECQ_REDIS_URL
		set +e
		rx_status=0 rx_cmd="" rx_prev=""
		: >"$tmp/want"
		# An example that exits non-zero is followed by one that shows it.
		rx_status_shown() {
			case "$1" in
			'echo $?'*) ;;
			*)
				if [ "$rx_status" != 0 ]; then
					echo "smoke: the README's example \$ $rx_prev exited $rx_status, which the README does not show" >&2
					exit 1
				fi
				;;
			esac
		}
		rx_run() {
			[ -n "$rx_cmd" ] || return 0
			rx_status_shown "$rx_cmd"
			rx_prev="$rx_cmd"
			# The example's $? is its predecessor's.
			(exit "$rx_status")
			eval "$rx_cmd" </dev/null >"$tmp/got" 2>&1
			rx_status=$?
			if ! output_matches "$tmp/want" "$tmp/got"; then
				{
					echo "smoke: the README's example \$ $rx_cmd"
					echo "printed:"; cat "$tmp/got"
					echo "the README shows:"; cat "$tmp/want"
				} >&2
				exit 1
			fi
			: >"$tmp/want"
		}
		while IFS= read -r rx_line; do
			case "$rx_line" in
			'$'*)
				rx_run
				rx_cmd="${rx_line#?}"
				;;
			*) printf '%s\n' "${rx_line#?}" >>"$tmp/want" ;;
			esac
		done <"$tmp/examples"
		rx_run
		rx_status_shown ""
	)
	echo "smoke: the README's $n examples of Using it: ok"
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

# wait_api waits until the HTTP API at $1 answers.
wait_api() {
	i=0
	until curl -sf "$1/v1/openapi.json" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 60 ]; then
			echo "smoke: no HTTP API answered at $1; its log:" >&2
			cat "$tmp"/serve.log >&2
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
check_synopsis
# The HTTP API's examples run against an execq serve.
command -v curl >/dev/null 2>&1 || { echo "smoke: the README's HTTP API examples need curl (apt-get install -y curl)" >&2; exit 1; }
sport="$(free_port)"
"$bin" serve --redis "redis://127.0.0.1:$port/0" --addr "127.0.0.1:$sport" >"$tmp/serve.log" 2>&1 &
pids="$pids $!"
wait_api "http://127.0.0.1:$sport"
EXECQ_API="http://127.0.0.1:$sport"
export EXECQ_API
check_readme_examples "redis://127.0.0.1:$port/0"
echo "smoke: execq worker + redis-server + execq serve: ok"

port="$(free_port)"
dport="$(free_port)"
"$bin" up --embedded-addr "127.0.0.1:$port" --dashboard-addr "127.0.0.1:$dport" --data-dir "$tmp/up-redis" --pool-size 2 >"$tmp/up.log" 2>&1 &
pids="$pids $!"
wait_ready "redis://127.0.0.1:$port/0"
check_run "redis://127.0.0.1:$port/0"
grep -q "started redis-server" "$tmp/up.log" || { echo "smoke: execq up did not start its own redis-server:" >&2; cat "$tmp/up.log" >&2; exit 1; }
wait_api "http://127.0.0.1:$dport"
out="$(curl -s -X POST "http://127.0.0.1:$dport/v1/executions" -H 'Content-Type: application/json' -d '{"cmd": ["echo", "via up"]}')"
id="$(echo "$out" | sed -n 's/.*"executionId":"\([^"]*\)".*/\1/p')"
[ -n "$id" ] || { echo "smoke: POST /v1/executions on execq up answered '$out'" >&2; exit 1; }
case "$(curl -s "http://127.0.0.1:$dport/v1/executions/$id?wait=30s")" in
*'"status":"succeeded"'*) ;;
*) echo "smoke: execq up's HTTP API gave no succeeded result for $id" >&2; exit 1 ;;
esac
echo "smoke: execq up (its own redis-server): ok"
