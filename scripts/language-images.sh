#!/bin/sh
# Builds the language images from Debian packages without a registry:
# execq-python (python3 with venv and the standard library, pytest, numpy),
# execq-node (nodejs) and execq-c (gcc, libc6-dev, make). One debootstrap
# minbase root filesystem of this machine's Debian release is made once and
# cached as a tarball under $EXECQ_CACHE (default /var/cache/execq); each
# image is that root with its packages installed in a chroot, cleaned (no
# package lists or caches, no documentation, no setuid or setgid bit), with
# the sandbox image's conventions (user sandbox 1000:1000 whose home is
# /workspace, empty /workspace and /tmp mount points), imported with
# `docker import`. Each image carries the label execq.build, a hash of this
# script, the release and its packages: an image whose label matches is
# kept ("cached"), any other is rebuilt.
#
# Usage: language-images.sh [python|node|c]...   (default: all three)
# Needs root (debootstrap, chroot) and a Docker engine; installs debootstrap
# when missing. MIRROR and SECURITY_MIRROR name the Debian mirrors (default:
# deb.debian.org); RELEASE overrides the release read from /etc/os-release.
set -eu

log() { echo "language-images: $*" >&2; }
fail() { log "$*"; exit 1; }

packages_of() {
	case "$1" in
	python) echo "python3 python3-venv python3-pytest python3-numpy" ;;
	node) echo "nodejs" ;;
	c) echo "gcc libc6-dev make" ;;
	*) return 1 ;;
	esac
}

cmd_of() {
	case "$1" in
	python) echo '["python3"]' ;;
	node) echo '["node"]' ;;
	c) echo '["/bin/sh"]' ;;
	esac
}

langs="${*:-python node c}"
for lang in $langs; do
	packages_of "$lang" >/dev/null || fail "unknown image $lang (known: python node c)"
done

script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cache="${EXECQ_CACHE:-/var/cache/execq}"
mirror="${MIRROR:-http://deb.debian.org/debian}"
security="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

docker info >/dev/null 2>&1 || fail "the Docker engine does not answer (scripts/setup.sh starts it)"

if [ -z "${RELEASE:-}" ]; then
	[ -r /etc/os-release ] || fail "no /etc/os-release; set RELEASE to a Debian release (e.g. bookworm)"
	RELEASE="$(. /etc/os-release && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}")" || true
	[ -n "$RELEASE" ] || fail "/etc/os-release names no Debian release; set RELEASE (e.g. bookworm)"
fi
release="$RELEASE"
arch="$(dpkg --print-architecture)"

# What each image is built from: this script (which holds the package
# lists), the release and the architecture; and for each image, its
# packages.
base_hash="$(printf '%s %s %s\n' "$(sha256sum <"$script" | cut -c1-64)" "$release" "$arch" | sha256sum | cut -c1-64)"
build_hash() { printf '%s %s %s\n' "$base_hash" "$1" "$(packages_of "$1")" | sha256sum | cut -c1-16; }
label_of() { docker image inspect -f '{{index .Config.Labels "execq.build"}}' "$1" 2>/dev/null || true; }

# stale lists the images whose label is not their build hash; with -v it
# says which are cached.
stale() {
	todo=""
	for lang in $langs; do
		image="execq-$lang:latest"
		if [ "$(label_of "$image")" != "$(build_hash "$lang")" ]; then
			todo="$todo $lang"
		elif [ "${1:-}" = -v ]; then
			log "$image cached ($(build_hash "$lang"))"
		fi
	done
	echo "$todo"
}

todo="$(stale -v)"
[ -n "$todo" ] || exit 0

[ "$(id -u)" = 0 ] || fail "building$todo needs root (debootstrap, chroot); run: sudo $0 $*"
if ! command -v debootstrap >/dev/null 2>&1; then
	log "installing debootstrap"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
[ -e "/usr/share/debootstrap/scripts/$release" ] ||
	fail "debootstrap does not know the release $release (a newer debootstrap may)"

mkdir -p "$cache"
# Two builds at once would debootstrap twice and race on the tarball; the
# second one finds the images the first one built.
exec 9>"$cache/lock"
flock 9
todo="$(stale)"
[ -n "$todo" ] || exit 0

work="$(mktemp -d "${TMPDIR:-/tmp}/execq-images.XXXXXX")"
mounted=""
cleanup() {
	for m in $mounted; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The same pruning Debian's slim images use: no documentation but the
# copyright files, no manual pages, no translations.
dpkg_excludes() {
	cat <<'EXCLUDES'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EXCLUDES
}

base_tar="$cache/rootfs-$release-$arch-$(echo "$base_hash" | cut -c1-16).tar"

# build_base makes the minbase root with the sandbox user and fresh package
# lists, and caches it as $base_tar.
build_base() {
	root="$work/base"
	log "debootstrap --variant=minbase $release ($arch) from $mirror"
	if ! debootstrap --variant=minbase --arch="$arch" --components=main "$release" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
		tail -n 20 "$work/debootstrap.log" >&2
		fail "debootstrap failed (log above; a mirror can be named with MIRROR=...)"
	fi
	dpkg_excludes >"$root/etc/dpkg/dpkg.cfg.d/excludes"
	{
		echo "deb $mirror $release main"
		case "$release" in
		sid | unstable) ;;
		*)
			echo "deb $mirror $release-updates main"
			echo "deb $security $release-security main"
			;;
		esac
	} >"$root/etc/apt/sources.list"
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	chroot "$root" apt-get update -qq || fail "apt-get update in the $release root failed"
	chroot "$root" groupadd -g 1000 sandbox
	chroot "$root" useradd -u 1000 -g 1000 -d /workspace -M -s /bin/sh sandbox
	tar -C "$root" --numeric-owner -cf "$base_tar.tmp" .
	mv "$base_tar.tmp" "$base_tar"
	rm -rf --one-file-system "$root"
	for old in "$cache"/rootfs-"$release"-"$arch"-*.tar; do
		[ "$old" = "$base_tar" ] || rm -f "$old"
	done
}

# build_image installs lang's packages into a copy of the base root,
# cleans it and imports it as execq-LANG:latest.
build_image() {
	lang="$1"
	image="execq-$lang:latest"
	hash="$(build_hash "$lang")"
	root="$work/$lang"
	mkdir "$root"
	tar -C "$root" -xpf "$base_tar"
	mount -t proc proc "$root/proc"
	mounted="$mounted $root/proc"
	# Package lists cached with the base may have aged out of the mirror:
	# refresh them once on failure.
	install="env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(packages_of "$lang")"
	if ! chroot "$root" $install >"$work/$lang.log" 2>&1; then
		chroot "$root" apt-get update -qq
		if ! chroot "$root" $install >"$work/$lang.log" 2>&1; then
			tail -n 20 "$work/$lang.log" >&2
			fail "installing $(packages_of "$lang") failed (log above)"
		fi
	fi
	umount "$root/proc"
	clean_root "$root"
	old="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
	tar -C "$root" --numeric-owner -cf - . |
		docker import \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'ENV HOME=/workspace' \
			--change 'WORKDIR /workspace' \
			--change "CMD $(cmd_of "$lang")" \
			--change "LABEL execq.build=$hash" \
			--message "execq $lang: Debian $release, $(packages_of "$lang")" \
			- "$image" >/dev/null
	rm -rf --one-file-system "$root"
	# The image this one replaces is execq's own (it has the label); an
	# engine still running it keeps it.
	if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$image")" ] &&
		[ -n "$(docker image inspect -f '{{index .Config.Labels "execq.build"}}' "$old" 2>/dev/null || true)" ]; then
		docker image rm "$old" >/dev/null 2>&1 || true
	fi
}

# clean_root removes what a sandbox needs not and must not have.
clean_root() {
	r="$1"
	chroot "$r" apt-get clean
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old \
		"$r"/var/lib/dpkg/*-old "$r"/var/cache/ldconfig/aux-cache "$r"/var/log/* \
		"$r"/tmp "$r"/var/tmp/* "$r"/root/.cache
	find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
	find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
	rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/groff/* "$r"/usr/share/lintian/*
	# The engine provides /dev, /proc, /sys and the network files.
	rm -rf "$r"/dev/* "$r"/proc/* "$r"/sys/*
	echo "127.0.0.1 localhost" >"$r/etc/hosts"
	: >"$r/etc/resolv.conf"
	echo localhost >"$r/etc/hostname"
	find "$r" -xdev ! -type l -perm /6000 -exec chmod ug-s {} +
	if [ -n "$(find "$r" -xdev ! -type l -perm /6000 | head -n1)" ]; then
		fail "setuid or setgid files remain in the $lang root"
	fi
	mkdir -p "$r/workspace" "$r/tmp"
	chown 1000:1000 "$r/workspace"
	chmod 0755 "$r/workspace"
	chmod 1777 "$r/tmp"
	[ -z "$(ls -A "$r/workspace")" ] || fail "/workspace is not empty in the $lang root"
}

t0="$(date +%s)"
if [ -f "$base_tar" ]; then
	log "base root cached ($base_tar)"
else
	build_base
	log "base root built in $(($(date +%s) - t0)) s ($base_tar)"
fi
for lang in $todo; do
	t="$(date +%s)"
	build_image "$lang"
	size="$(docker image inspect -f '{{.Size}}' "execq-$lang:latest")"
	log "built execq-$lang:latest in $(($(date +%s) - t)) s, $((size / 1000000)) MB ($(build_hash "$lang"))"
done
log "done in $(($(date +%s) - t0)) s"
