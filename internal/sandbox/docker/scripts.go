package docker

// The shell scripts that keep a container clean. They run as the
// unprivileged user, with POSIX sh builtins only, and fork only for what
// there is to clean, so that checking a clean container costs next to
// nothing. They set PATH themselves: the user's environment is not theirs.
//
// kill -9 -1 cannot serve as its own check: it succeeds whenever any other
// process exists, including root's keepalive it may not signal.

// scriptPath is the PATH of the cleaning scripts.
const scriptPath = `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`

// killFunc defines kill_user UID: it kills every process of UID but the
// calling shell, looping until none is left (zombies stay listed until init
// reaps them), and sets why and fails when some survive.
const killFunc = `
kill_user() {
	tries=0
	while :; do
		left=0
		for status in /proc/[0-9]*/status; do
			[ "$status" = "/proc/$$/status" ] && continue
			while read -r key real _; do
				if [ "$key" = "Uid:" ]; then
					[ "$real" = "$1" ] && left=$((left + 1))
					break
				fi
			done 2>/dev/null <"$status"
		done
		[ "$left" -eq 0 ] && return 0
		tries=$((tries + 1))
		if [ "$tries" -gt 200 ]; then
			why="$left processes survive SIGKILL"
			return 1
		fi
		kill -9 -1 2>/dev/null
		[ "$tries" -gt 10 ] && sleep 0.01
	done
}
`

// wipeFunc defines wipe: it empties /workspace, /tmp, /dev/shm and
// /dev/mqueue, whatever modes the last execution left, removes the user's
// System V IPC objects, and sets why and fails when anything survives.
const wipeFunc = `
wipe() {
	[ -r /workspace ] && [ -w /workspace ] && [ -x /workspace ] || chmod 0755 /workspace 2>/dev/null
	for dir in /workspace /tmp /dev/shm /dev/mqueue; do
		[ -d "$dir" ] || continue
		for f in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
			[ -e "$f" ] || [ -L "$f" ] || continue
			chmod -R u+rwx "$f" 2>/dev/null
			rm -rf "$f" 2>/dev/null
			if [ -e "$f" ] || [ -L "$f" ]; then
				why="$f survives"
				return 1
			fi
		done
	done
	for ipc in shm:m msg:q sem:s; do
		file="/proc/sysvipc/${ipc%%:*}"
		[ -r "$file" ] || continue
		found=0
		{
			read -r _
			while read -r _ id _; do
				found=1
				ipcrm "-${ipc#*:}" "$id" 2>/dev/null
			done
		} <"$file"
		[ "$found" = 0 ] && continue
		{
			read -r _
			if read -r _; then
				why="System V ${ipc%%:*} objects survive"
				return 1
			fi
		} <"$file"
	done
	return 0
}
`

// resetScript kills what the last execution left and wipes ($1 is the
// user's uid). It exits non-zero, saying why, when the container is not
// clean, so that it is replaced instead of reused.
const resetScript = scriptPath + killFunc + wipeFunc + `
kill_user "$1" && wipe || { echo "$why" >&2; exit 1; }
`

// dirtyMarker begins what runScript writes to stdout, followed by its
// token, when the wipe before a command fails; the command does not run.
const dirtyMarker = "execq-dirty "

// runScript starts a command: $1 is a token, $2 is 1 when the workspace
// must be wiped first, and the command follows. A failed wipe is reported
// on stdout with dirtyMarker and the token, and exit code 125. A program
// that is not found is reported as a shell would, with exit code 127. The
// command then replaces the shell: it has its PID, its environment, no
// extra process.
const runScript = wipeFunc + `
token=$1 wipe_first=$2
shift 2
if [ "$wipe_first" = 1 ]; then
	saved_path=$PATH
	` + scriptPath + `
	wipe || { printf '` + dirtyMarker + `%s: %s\n' "$token" "$why"; exit 125; }
	PATH=$saved_path
fi
if ! command -v "$1" >/dev/null 2>&1; then
	printf 'execq: cannot run "%s": executable file not found in $PATH\n' "$1" >&2
	exit 127
fi
exec "$@"
`

// putFilesScript extracts a tar archive from stdin into $1, after a wipe
// when $2 is 1. umask 0: the modes in the archive are the modes asked for.
const putFilesScript = scriptPath + wipeFunc + `
if [ "$2" = 1 ]; then
	wipe || { echo "$why" >&2; exit 1; }
fi
umask 0 && exec tar -x -f - -C "$1"
`
