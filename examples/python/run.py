#!/usr/bin/env python3
"""Run a command on an execq server, like `execq run`, with Python's
standard library only:

    run.py http://127.0.0.1:8088 sh -c 'echo hi; exit 3'; echo $?   # hi, 3

The command's stdout and stderr are copied to this program's as they are
written, byte for byte; it exits with the command's exit code (124 timed
out, 125 execq failed, 130 canceled, 137 memory limit). Ctrl-C cancels the
execution. The bearer token, if the server wants one, is read from
EXECQ_API_TOKEN.
"""

import argparse
import os
import sys

import execq


def main(argv):
    p = argparse.ArgumentParser(description="Run a command on an execq server.")
    p.add_argument("url", help="the server, e.g. http://127.0.0.1:8088")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command and its arguments")
    p.add_argument("--image", help="the sandbox image")
    p.add_argument("--timeout", type=float, help="timeout in seconds")
    p.add_argument("--stdin", action="store_true", help="send this program's standard input")
    p.add_argument("--id", help="the execution ID: running again with the same ID never runs the command twice")
    p.add_argument("--file", action="append", default=[], metavar="SRC[:DST]",
                   help="put the local file SRC at DST in /workspace (repeatable)")
    p.add_argument("--collect", action="append", metavar="GLOB",
                   help="write the files matching GLOB back into --dir (repeatable)")
    p.add_argument("--dir", default=".", help="where collected files are written (default .)")
    p.add_argument("--force", action="store_true", help="overwrite existing files with collected ones")
    args = p.parse_args(argv)
    if not args.cmd:
        p.error("give the command to run")

    fields = {"image": args.image, "collect": args.collect, "idempotency_key": args.id}
    if args.timeout:
        fields["timeoutMs"] = int(args.timeout * 1000)
    files = {}
    for spec in args.file:
        src, _, dst = spec.partition(":")
        with open(src, "rb") as f:
            files[dst or os.path.basename(src)] = f.read()
    stdin = sys.stdin.buffer.read() if args.stdin else None

    client = execq.Client(args.url, token=os.environ.get("EXECQ_API_TOKEN"))
    try:
        eid = client.submit(args.cmd, stdin=stdin, files=files or None, **fields)
    except execq.APIError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return execq.EXIT_EXECQ_FAILED
    try:
        for ev in client.events(eid):
            out = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}.get(ev.type)
            if out is not None:
                out.write(ev.data)
                out.flush()
        result = client.wait(eid)
    except KeyboardInterrupt:
        client.cancel(eid)
        print(f"run.py: canceled {eid}", file=sys.stderr)
        return execq.EXIT_CANCELED
    if result.get("error"):
        print(f"run.py: {result['status']}: {result['error']}", file=sys.stderr)
    if args.collect:
        for path, reason in execq.write_files(args.dir, result.get("files") or [], args.collect, args.force):
            print(f"run.py: not written: {path}: {reason}", file=sys.stderr)
    return execq.exit_code_of(result)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
