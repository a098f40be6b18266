#!/bin/sh
# Makes a fresh Debian machine ready for execq, idempotently: installs what
# is missing (redis-server, busybox-static, and docker.io where no Docker
# engine answers), starts dockerd where it is not running, and builds the
# sandbox image when it is absent. With --test it also installs what the
# tests use: chromium and chromium-driver (the dashboard's browser test) and
# docker-compose (the compose file's check). Installing needs root;
# everything else is checked and reported.
set -eu
tests=0
[ "${1:-}" = "--test" ] && tests=1
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

image="${EXECQ_IMAGE:-execq-sandbox:latest}"
if ! docker image inspect "$image" >/dev/null 2>&1; then
	scripts/sandbox-image.sh "$image"
fi
log "ready: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), docker $(docker version --format '{{.Server.Version}}'), image $image"
