package mcpserver

// sandboxText says what runs where; every tool that runs a command
// repeats it, since a model may read one tool's description only.
const sandboxText = `The command runs in a fresh, locked-down Linux container of an execq worker, never on the caller's machine: no network (only loopback), a read-only root filesystem, an unprivileged user with no capabilities, and an empty, writable working directory /workspace (also /tmp), which is wiped after every execution: nothing persists from one call to the next. By default: 30 s timeout, 256 MiB of memory, 1 CPU, 256 processes, and the first 1 MiB of each of stdout and stderr kept. The default image is busybox (sh, grep, sed, awk, tar, ...; no python); pass image for another one the workers allow, such as execq-python:latest (python3, pytest, numpy), execq-node:latest or execq-c:latest (gcc, make).

Give either command, a shell script run with sh -c (e.g. "cd src && make test 2>&1 | tail -n 20"), or argv, a program and its arguments run directly without a shell (e.g. ["python3", "main.py", "--verbose"]). Put source code and data in files, {"main.py": "print(6*7)\n"}: each is written under /workspace (relative paths, directories created, mode 0644: run scripts as "sh build.sh" or "python3 main.py"). stdin is given to the command and closed; env adds environment variables. Programs buffer their output when it is not a terminal: set env PYTHONUNBUFFERED=1 to see Python's output as it happens.

The result's status is succeeded (exit code 0) or failed (any other exit code, the command's own: 1 for most errors, 2 for misuse, 126 not executable, 127 no such program, 128+N killed by signal N), which are normal results, or timed_out (exit code -1), oom_killed (137), canceled, rejected (the request was invalid, nothing ran: an image the workers do not allow, limits above their maxima) or error (execq itself failed). A rejected or error result is reported as a tool error.`

const executeDescription = `Run a command in an isolated sandbox and wait for it: returns its status, exit code, stdout, stderr and duration as text, and the full execq result as structured content. While it runs, its output is sent as progress notifications when the request carries a progressToken. Canceling this call cancels the execution: the command is killed.

` + sandboxText

const submitDescription = `Start a command in an isolated sandbox without waiting for it: returns its execution ID at once. Read its result with get_result (which can wait up to 60 s at a time) and stop it with cancel. Use it for commands that may run longer than a tool call should wait, or to run several at once; use execute otherwise.

` + sandboxText

const getResultDescription = `Read the result of an execution started with submit (or execute). Without waitSeconds it answers at once; with it, it waits up to that long (at most 60 s) for the execution to finish. While there is no result it returns status queued (waiting for a worker) or running; call it again. Once finished, it returns the same as execute: status, exit code, stdout, stderr and duration as text, and the full execq result as structured content. Results are kept for 24 hours.`

const cancelDescription = `Cancel an execution started with submit: a queued one never runs, a running one is killed, and its result's status becomes canceled. Canceling one that already finished changes nothing and says how it ended.`
