"""A client for execq's HTTP API, in Python's standard library only.

    import execq
    c = execq.Client("http://127.0.0.1:8088", token=None)
    eid = c.submit(["sh", "-c", "echo hi; exit 3"])
    for ev in c.events(eid):
        if ev.type in ("stdout", "stderr"):
            print(ev.type, ev.data)           # bytes, exactly as written
    result = c.wait(eid)                       # the result JSON, as a dict
    print(result["status"], result["exitCode"])

Everything the sandbox produced is the tenant's and is trusted by nothing
here: write_files() writes collected files confined to one directory, never
through a symbolic link and never over an existing file unless asked.
"""

import base64
import errno
import fnmatch
import json
import os
import stat
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "Event", "APIError", "write_files", "exit_code_of"]

# Exit codes of `execq run`, which run.py keeps: the command's own when it
# exited by itself, docker run's where execq ended it.
EXIT_TIMED_OUT = 124
EXIT_EXECQ_FAILED = 125
EXIT_CANCELED = 130
EXIT_OOM_KILLED = 137

# How long one long poll of a result may last; the server bounds it at 60 s.
_WAIT_SECONDS = 55
# A read on an event stream that sees nothing for this long (the server
# sends a ping every 15 s) means the connection is dead.
_EVENTS_READ_TIMEOUT = 45
# Reconnections of an event stream that fail in a row before events() gives up.
_MAX_RECONNECTS = 5


class APIError(Exception):
    """An HTTP error from the API, with its RFC 9457 problem document."""

    def __init__(self, status, problem, retry_after=None):
        self.status = status
        self.problem = problem or {}
        self.retry_after = retry_after
        detail = self.problem.get("detail") or self.problem.get("title") or ""
        super().__init__(f"HTTP {status}: {detail}".rstrip(": "))


class Event:
    """One event of an execution's stream.

    type is "started", "stdout", "stderr" or "exit". For stdout and stderr,
    data is the exact bytes the command wrote; for started and exit, the
    event's JSON as a dict. id resumes the stream after this event.
    """

    __slots__ = ("id", "type", "data")

    def __init__(self, id, type, data):
        self.id, self.type, self.data = id, type, data

    def __repr__(self):
        return f"Event({self.id!r}, {self.type!r}, {self.data!r})"


class Client:
    """A client of one execq server. token is a bearer token, or None."""

    def __init__(self, url, token=None, timeout=30):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def submit(self, cmd=None, *, stdin=None, files=None, idempotency_key=None, **fields):
        """Submit an execution and return its ID at once.

        cmd is the argv. stdin is bytes or str. files maps a path relative
        to /workspace to its content (bytes or str), or is a list of dicts
        as the API takes them. Other keyword arguments are request fields
        as the API names them: image, env, timeoutMs, memoryBytes, cpus,
        collect, workdir, maxOutputBytes, id, language, code, ...
        """
        body = {k: v for k, v in fields.items() if v is not None}
        if cmd is not None:
            body["cmd"] = list(cmd)
        if stdin is not None:
            body.update(_input("stdin", "stdinText", stdin))
        if files is not None:
            body["files"] = _files(files)
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        _, doc, _ = self._request("POST", "/v1/executions", json.dumps(body).encode(), headers)
        return doc["executionId"]

    def result(self, execution_id, wait=None):
        """Return the result (a dict) when final, else None.

        wait, in seconds, long-polls: the server answers when the result is
        there or when wait (at most 60 s) has passed.
        """
        path = "/v1/executions/" + _quote(execution_id)
        timeout = self.timeout
        if wait:
            path += "?wait=%ds" % int(wait)
            timeout = max(timeout, wait + 15)
        status, doc, _ = self._request("GET", path, timeout=timeout)
        return doc if status == 200 else None

    def wait(self, execution_id, timeout=None):
        """Wait for the result and return it; TimeoutError after timeout seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _WAIT_SECONDS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"execution {execution_id} has no result after {timeout} s")
                wait = max(1, min(wait, int(left)))
            res = self.result(execution_id, wait=wait)
            if res is not None:
                return res

    def cancel(self, execution_id):
        """Cancel the execution. Returns False when it had already ended."""
        try:
            self._request("POST", "/v1/executions/" + _quote(execution_id) + "/cancel")
        except APIError as e:
            if e.status == 409:
                return False
            raise
        return True

    def events(self, execution_id, after=None):
        """Yield the execution's events, from after the event ID after (None:
        from the start), as they are written, up to and including exit.

        A dropped connection is resumed from the last event seen.
        """
        last = after
        failures = 0
        while True:
            path = "/v1/executions/" + _quote(execution_id) + "/events"
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = last
            try:
                resp = self._open("GET", path, None, headers, _EVENTS_READ_TIMEOUT)
            except (urllib.error.URLError, OSError) as e:
                if isinstance(e, urllib.error.HTTPError):
                    raise _api_error(e)
                failures += 1
                if failures > _MAX_RECONNECTS:
                    raise
                time.sleep(min(2 ** failures * 0.1, 2))
                continue
            try:
                for ev in read_sse(resp):
                    failures = 0
                    last = ev.id or last
                    yield ev
                    if ev.type == "exit":
                        return
            except OSError:
                pass
            finally:
                resp.close()
            failures += 1
            if failures > _MAX_RECONNECTS:
                raise ConnectionError(f"the event stream of {execution_id} ended before its exit event")

    def run(self, cmd, stdout=None, stderr=None, **fields):
        """Submit, copy the output to the binary files stdout and stderr as it
        comes, and return the result."""
        eid = self.submit(cmd, **fields)
        for ev in self.events(eid):
            out = {"stdout": stdout, "stderr": stderr}.get(ev.type)
            if out is not None:
                out.write(ev.data)
                out.flush()
        return self.wait(eid)

    def _request(self, method, path, body=None, headers=None, timeout=None):
        try:
            resp = self._open(method, path, body, headers or {}, timeout or self.timeout)
        except urllib.error.HTTPError as e:
            raise _api_error(e)
        with resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None), resp.headers

    def _open(self, method, path, body, headers, timeout):
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        return urllib.request.urlopen(req, timeout=timeout)


def read_sse(lines):
    """Parse a text/event-stream from an iterable of byte lines into Events."""
    ev_id, ev_type, data = None, "message", []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data:
                yield _event(ev_id, ev_type, "\n".join(data))
            ev_type, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "id":
            ev_id = value
        elif field == "event":
            ev_type = value
        elif field == "data":
            data.append(value)


def _event(ev_id, ev_type, data):
    doc = json.loads(data)
    if ev_type in ("stdout", "stderr"):
        if "base64" in doc:
            return Event(ev_id, ev_type, base64.b64decode(doc["base64"]))
        return Event(ev_id, ev_type, doc.get("text", "").encode("utf-8"))
    return Event(ev_id, ev_type, doc)


def exit_code_of(result):
    """The exit code `execq run` gives for a result."""
    status = result.get("status")
    if status in ("succeeded", "failed"):
        return result.get("exitCode", EXIT_EXECQ_FAILED)
    return {"timed_out": EXIT_TIMED_OUT, "canceled": EXIT_CANCELED,
            "oom_killed": EXIT_OOM_KILLED}.get(status, EXIT_EXECQ_FAILED)


def _input(b64_field, text_field, value):
    if isinstance(value, str):
        return {text_field: value}
    return {b64_field: base64.b64encode(bytes(value)).decode("ascii")}


def _files(files):
    if isinstance(files, dict):
        out = []
        for path, content in files.items():
            f = {"path": path}
            f.update(_input("content", "text", content))
            out.append(f)
        return out
    return list(files)


def _quote(s):
    return urllib.parse.quote(s, safe="")


def _api_error(e):
    raw = e.read()
    try:
        problem = json.loads(raw)
    except ValueError:
        problem = {"detail": raw.decode("utf-8", "replace").strip()}
    return APIError(e.code, problem, e.headers.get("Retry-After"))


# Writing collected files.


def write_files(directory, files, globs=None, force=False):
    """Write a result's collected files under directory, trusting nothing
    about them, and return [(path, reason)] for the files not written.

    A path is refused when it is absolute, has "..", or (without globs) has
    a dot segment; with globs, when none matches it. Every directory is
    opened without following symbolic links, relative to the one above it,
    so no write leaves directory; a file is never written through a link,
    over anything but a regular file, or over an existing file unless force
    is true. Modes keep their permission bits only.
    """
    skipped = []
    root = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for f in files:
            try:
                _write_file(root, f, globs, force)
            except (OSError, ValueError) as e:
                skipped.append((f.get("path", ""), _reason(e)))
    finally:
        os.close(root)
    return skipped


def _write_file(root, f, globs, force):
    if f.get("error"):
        raise ValueError(f["error"])
    name = _workspace_path(f.get("path", ""))
    if globs is not None and not match_any(globs, name):
        raise ValueError("no collect glob names it")
    if globs is None and any(seg.startswith(".") for seg in name.split("/")):
        raise ValueError("a dotfile, and no collect glob names it")
    *dirs, base = name.split("/")
    fd = os.dup(root)
    try:
        for d in dirs:
            try:
                os.mkdir(d, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                nfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ValueError(f"{d} is a symbolic link or not a directory; it is not followed")
                raise
            os.close(fd)
            fd = nfd
        try:
            st = os.stat(base, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISLNK(st.st_mode):
                raise ValueError("a symbolic link is in its place; it is not followed")
            if not stat.S_ISREG(st.st_mode):
                raise ValueError("something other than a regular file is in its place")
            if not force:
                raise ValueError("the file exists; force overwrites it")
            os.unlink(base, dir_fd=fd)
        mode = int(str(f.get("mode") or "0644"), 8) & 0o777 or 0o644
        out = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=fd)
        with os.fdopen(out, "wb") as w:
            w.write(base64.b64decode(f.get("content") or ""))
    finally:
        os.close(fd)


def _workspace_path(p):
    if not p or "\x00" in p:
        raise ValueError("the path is empty or has a NUL byte")
    if p.startswith("/"):
        raise ValueError("the path is absolute")
    if ".." in p.split("/"):
        raise ValueError('the path contains ".."')
    clean = os.path.normpath(p)
    if clean in (".", "") or clean.startswith("/"):
        raise ValueError("the path names the directory itself")
    return clean


def match_any(globs, name):
    """Whether name matches one of the collect globs, as the worker matches
    them: segment by segment, "**" for any number of directories, and no
    "*" or "**" matching a dot segment unless the glob names it."""
    segs = name.split("/")
    return any(_match(os.path.normpath(g).split("/"), segs) for g in globs)


def _match(pattern, name):
    if not pattern:
        return not name
    if pattern[0] == "**":
        for i in range(len(name) + 1):
            if _match(pattern[1:], name[i:]):
                return True
            if i < len(name) and name[i].startswith("."):
                return False
        return False
    if not name:
        return False
    if name[0].startswith(".") and not pattern[0].startswith("."):
        return False
    return fnmatch.fnmatchcase(name[0], pattern[0]) and _match(pattern[1:], name[1:])


def _reason(e):
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e)
