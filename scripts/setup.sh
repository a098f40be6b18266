#!/bin/sh
# Makes a fresh Debian machine ready for execq, idempotently: installs what
# is missing (redis-server, busybox-static, and docker.io where no Docker
# engine answers), starts dockerd where it is not running, and builds the
# sandbox image when it is absent. With --test it also installs what the
# tests use: chromium and chromium-driver (the dashboard's browser test),
# docker-compose (the compose file's check), curl, python3 and nodejs (the
# HTTP API's clients), redis-tools and iproute2 (the Redis Cluster and the
# network namespaces of the scale-out tests), and builds the language images.
# With --languages it builds the language images (scripts/language-images.sh,
# with debootstrap) where they are missing or stale. With --with-runsc it installs
# gVisor's runsc and registers it with the engine as the runtime "runsc"
# (worker --oci-runtime runsc). Installing needs root; everything else is
# checked and reported.
set -eu
tests=0
languages=0
runsc=0
for arg in "$@"; do
	case "$arg" in
	--test) tests=1 languages=1 ;;
	--languages) languages=1 ;;
	--with-runsc) runsc=1 ;;
	*) echo "setup: unknown option $arg" >&2; exit 2 ;;
	esac
done
cd "$(dirname "$0")/.."

log() { echo "setup: $*" >&2; }

missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
	missing="$missing busybox-static"
fi
if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; then
	missing="$missing docker.io"
fi
if [ "$tests" = 1 ]; then
	command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
	command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
	command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
	command -v curl >/dev/null 2>&1 || missing="$missing curl"
	# The HTTP API's tests and the Python client run with Debian's own.
	[ -x /usr/bin/python3 ] || missing="$missing python3"
	# The JavaScript client (Node's fetch); redis-cli builds the tests'
	# Redis Cluster; ip makes the partition tests' network namespaces.
	command -v node >/dev/null 2>&1 || missing="$missing nodejs"
	command -v redis-cli >/dev/null 2>&1 || missing="$missing redis-tools"
	command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
fi
if [ "$languages" = 1 ]; then
	command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
fi
if [ "$runsc" = 1 ]; then
	command -v runsc >/dev/null 2>&1 || missing="$missing runsc"
fi
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		log "missing:$missing; install with: sudo apt-get install -y$missing"
		exit 1
	fi
	log "installing$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ]; then
		log "the Docker engine does not answer and only root can start it"
		exit 1
	fi
	log "starting dockerd (log: /var/log/execq-dockerd.log)"
	nohup dockerd >/var/log/execq-dockerd.log 2>&1 &
	i=0
	until docker info >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 120 ]; then
			log "dockerd did not come up in 60s; see /var/log/execq-dockerd.log"
			tail -n 20 /var/log/execq-dockerd.log >&2 || true
			exit 1
		fi
		sleep 0.5
	done
fi

if [ "$runsc" = 1 ] && ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; then
	if [ "$(id -u)" != 0 ]; then
		log "runsc is not registered with the engine and only root can register it"
		exit 1
	fi
	# Registered with --network=none: the sandboxes have no network, and
	# without it runsc refuses to run in the root network namespace. dockerd
	# reloads its runtimes on SIGHUP, without a restart.
	log "registering runsc with the engine (/etc/docker/daemon.json)"
	mkdir -p /etc/docker
	python3 - "$(command -v runsc)" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
cfg = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
cfg.setdefault("runtimes", {})["runsc"] = {"path": sys.argv[1], "runtimeArgs": ["--network=none"]}
json.dump(cfg, open(path, "w"), indent=2)
PY
	pkill -HUP -x dockerd
	i=0
	until docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; do
		i=$((i + 1))
		if [ "$i" -gt 40 ]; then
			log "dockerd did not pick up runsc; see /etc/docker/daemon.json"
			exit 1
		fi
		sleep 0.25
	done
fi

image="${EXECQ_IMAGE:-execq-sandbox:latest}"
if ! docker image inspect "$image" >/dev/null 2>&1; then
	scripts/sandbox-image.sh "$image"
fi
images="image $image"
if [ "$languages" = 1 ]; then
	scripts/language-images.sh
	images="images $image, execq-python, execq-node, execq-c"
fi
log "ready: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), docker $(docker version --format '{{.Server.Version}}'), $images"
