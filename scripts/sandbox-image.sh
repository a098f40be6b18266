#!/bin/sh
# Builds the default sandbox image from Debian's busybox-static without a
# registry: a root filesystem with /bin/busybox and its applet links, a
# sandbox user 1000:1000 whose home is /workspace, and empty /workspace and
# /tmp mount points, imported with `docker import`.
set -eu

image="${1:-execq-sandbox:latest}"
busybox="${BUSYBOX:-/bin/busybox}"

if [ ! -x "$busybox" ]; then
	echo "sandbox-image: $busybox not found; install it with: apt-get install -y busybox-static" >&2
	exit 1
fi
if ! "$busybox" --list >/dev/null 2>&1; then
	echo "sandbox-image: $busybox does not list its applets; is it busybox-static?" >&2
	exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
	echo "sandbox-image: $busybox is dynamically linked; install busybox-static" >&2
	exit 1
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/bin" "$root/usr/bin" "$root/sbin" "$root/usr/sbin" "$root/etc" \
	"$root/workspace" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/root"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
	case "$applet" in busybox) continue ;; esac
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
ln -s ../../bin/env "$root/usr/bin/env"

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
sandbox:x:1000:1000:sandbox:/workspace:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
sandbox:x:1000:
nogroup:x:65534:
GROUP
echo "127.0.0.1 localhost" >"$root/etc/hosts"
chmod 0755 "$root/workspace"
chmod 1777 "$root/tmp"

tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . |
	docker import \
		--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' \
		--change 'ENV HOME=/workspace' \
		--change 'WORKDIR /workspace' \
		--change 'CMD ["/bin/sh"]' \
		--message "execq sandbox: busybox $("$busybox" 2>&1 | head -n1 | cut -d' ' -f2)" \
		- "$image" >/dev/null
echo "sandbox-image: built $image"
