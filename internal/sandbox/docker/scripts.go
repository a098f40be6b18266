package docker

// resetScript runs as the unprivileged user (its uid is $1) after every
// execution. It kills every process of that user but itself, looping until
// none is left (zombies stay listed until init reaps them), empties every
// directory the user can write, removes the user's System V IPC objects,
// and exits non-zero when anything survives, so that the container is
// replaced instead of reused.
//
// kill -9 -1 cannot serve as its own check: it succeeds whenever any other
// process exists, including root's keepalive it may not signal.
const resetScript = `
uid="$1"
tries=0
while :; do
	left=0
	for status in /proc/[0-9]*/status; do
		[ "$status" = "/proc/$$/status" ] && continue
		while read -r key real _; do
			if [ "$key" = "Uid:" ]; then
				[ "$real" = "$uid" ] && left=$((left + 1))
				break
			fi
		done 2>/dev/null <"$status"
	done
	[ "$left" -eq 0 ] && break
	tries=$((tries + 1))
	if [ "$tries" -gt 200 ]; then
		echo "$left processes survive SIGKILL" >&2
		exit 1
	fi
	kill -9 -1 2>/dev/null
	[ "$tries" -gt 10 ] && sleep 0.01
done

dirs="/workspace /tmp /dev/shm /dev/mqueue"
chmod 0755 /workspace 2>/dev/null
for dir in $dirs; do
	[ -d "$dir" ] || continue
	for f in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
		[ -e "$f" ] || [ -L "$f" ] || continue
		chmod -R u+rwx "$f" 2>/dev/null
		rm -rf "$f" 2>/dev/null
	done
done

for ipc in shm:m msg:q sem:s; do
	file="/proc/sysvipc/${ipc%%:*}"
	[ -r "$file" ] || continue
	{
		read -r _
		while read -r _ id _; do
			ipcrm "-${ipc#*:}" "$id" 2>/dev/null
		done
	} <"$file"
done

dirty=0
for dir in $dirs; do
	[ -d "$dir" ] || continue
	for f in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			echo "$f survives" >&2
			dirty=1
		fi
	done
done
for ipc in shm msg sem; do
	file="/proc/sysvipc/$ipc"
	[ -r "$file" ] || continue
	if [ "$(wc -l <"$file")" -gt 1 ]; then
		echo "System V $ipc objects survive" >&2
		dirty=1
	fi
done
exit "$dirty"
`
