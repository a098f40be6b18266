// A client for execq's HTTP API, with Node's built-in fetch (Node 18+) and
// nothing else.
//
//   import { Client } from "./execq.mjs";
//   const c = new Client("http://127.0.0.1:8088");
//   const id = await c.submit(["sh", "-c", "echo hi; exit 3"]);
//   for await (const ev of c.events(id)) {
//     if (ev.type === "stdout") process.stdout.write(ev.data); // a Buffer, byte for byte
//   }
//   const result = await c.wait(id); // the result JSON
//
// Everything the sandbox produced is the tenant's and is trusted by nothing
// here: writeFiles() writes collected files confined to one directory,
// never through a symbolic link and never over an existing file unless asked.

import fs from "node:fs";
import path from "node:path";

// Exit codes of `execq run`, which run.mjs keeps.
export const EXIT_TIMED_OUT = 124;
export const EXIT_EXECQ_FAILED = 125;
export const EXIT_CANCELED = 130;
export const EXIT_OOM_KILLED = 137;

// One long poll of a result; the server bounds it at 60 s.
const WAIT_SECONDS = 55;
// Reconnections of an event stream that fail in a row before events() gives up.
const MAX_RECONNECTS = 5;
// A stream that shows nothing for this long (the server pings every 15 s) is dead.
const EVENTS_IDLE_MS = 45_000;

/** An HTTP error from the API, with its RFC 9457 problem document. */
export class APIError extends Error {
  constructor(status, problem, retryAfter) {
    super(`HTTP ${status}: ${problem?.detail ?? problem?.title ?? ""}`.replace(/: $/, ""));
    this.status = status;
    this.problem = problem ?? {};
    this.retryAfter = retryAfter;
  }
}

/** A client of one execq server; token is a bearer token or undefined. */
export class Client {
  constructor(url, { token, fetch: f = globalThis.fetch } = {}) {
    this.url = url.replace(/\/+$/, "");
    this.token = token;
    this.fetch = f;
  }

  /**
   * Submits an execution and returns its ID at once. cmd is the argv;
   * stdin a string or a Buffer; files an object mapping a path under
   * /workspace to its content (string or Buffer). Other fields are request
   * fields as the API names them (image, env, timeoutMs, memoryBytes,
   * collect, workdir, id, language, code, ...).
   */
  async submit(cmd, { stdin, files, idempotencyKey, ...fields } = {}) {
    const body = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
    if (cmd) body.cmd = [...cmd];
    if (stdin !== undefined) Object.assign(body, input("stdin", "stdinText", stdin));
    if (files !== undefined) {
      body.files = Array.isArray(files)
        ? files
        : Object.entries(files).map(([p, content]) => ({ path: p, ...input("content", "text", content) }));
    }
    const headers = { "Content-Type": "application/json" };
    if (idempotencyKey !== undefined) headers["Idempotency-Key"] = idempotencyKey;
    const { doc } = await this.request("POST", "/v1/executions", { body: JSON.stringify(body), headers });
    return doc.executionId;
  }

  /** The result when final, else null; wait (seconds, at most 60) long-polls. */
  async result(id, { wait } = {}) {
    let p = `/v1/executions/${encodeURIComponent(id)}`;
    if (wait) p += `?wait=${Math.floor(wait)}s`;
    const { status, doc } = await this.request("GET", p);
    return status === 200 ? doc : null;
  }

  /** Waits for the result and returns it. */
  async wait(id, { timeoutMs } = {}) {
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`execution ${id} has no result after ${timeoutMs} ms`);
      const res = await this.result(id, { wait: Math.max(1, Math.min(WAIT_SECONDS, Math.floor(left / 1000))) });
      if (res) return res;
    }
  }

  /** Cancels the execution; false when it had already ended. */
  async cancel(id) {
    try {
      await this.request("POST", `/v1/executions/${encodeURIComponent(id)}/cancel`);
      return true;
    } catch (e) {
      if (e instanceof APIError && e.status === 409) return false;
      throw e;
    }
  }

  /**
   * Yields the execution's events ({id, type, data}) from after the event
   * ID after (undefined: from the start), up to and including exit. For
   * stdout and stderr, data is a Buffer of the exact bytes; for started and
   * exit, the event's JSON. A dropped connection resumes from the last event.
   */
  async *events(id, { after } = {}) {
    let last = after;
    let failures = 0;
    for (;;) {
      const headers = { Accept: "text/event-stream" };
      if (last !== undefined) headers["Last-Event-ID"] = last;
      const ctl = new AbortController();
      let resp;
      try {
        resp = await this.fetch(`${this.url}/v1/executions/${encodeURIComponent(id)}/events`, {
          headers: this.headers(headers),
          signal: ctl.signal,
        });
      } catch (e) {
        if (++failures > MAX_RECONNECTS) throw e;
        await sleep(Math.min(100 * 2 ** failures, 2000));
        continue;
      }
      if (!resp.ok) throw await apiError(resp);
      try {
        for await (const ev of readSSE(resp.body, ctl)) {
          failures = 0;
          last = ev.id ?? last;
          yield ev;
          if (ev.type === "exit") return;
        }
      } catch (e) {
        if (e instanceof SyntaxError) throw e;
      } finally {
        ctl.abort();
      }
      if (++failures > MAX_RECONNECTS) {
        throw new Error(`the event stream of ${id} ended before its exit event`);
      }
    }
  }

  headers(h = {}) {
    return this.token ? { ...h, Authorization: `Bearer ${this.token}` } : h;
  }

  async request(method, p, { body, headers } = {}) {
    const resp = await this.fetch(this.url + p, { method, body, headers: this.headers(headers) });
    if (!resp.ok) throw await apiError(resp);
    const text = await resp.text();
    return { status: resp.status, doc: text ? JSON.parse(text) : null };
  }
}

/** Parses a text/event-stream body (a web ReadableStream of bytes) into events. */
export async function* readSSE(body, ctl) {
  const decoder = new TextDecoder();
  let buf = "";
  let id, type = "message", data = [];
  let idle;
  const arm = () => {
    clearTimeout(idle);
    if (ctl) idle = setTimeout(() => ctl.abort(), EVENTS_IDLE_MS);
  };
  try {
    arm();
    for await (const chunk of body) {
      arm();
      buf += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.search(/\r?\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(buf[nl] === "\r" ? nl + 2 : nl + 1);
        if (line === "") {
          if (data.length) yield toEvent(id, type, data.join("\n"));
          type = "message";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "id") id = value;
        else if (field === "event") type = value;
        else if (field === "data") data.push(value);
      }
    }
  } finally {
    clearTimeout(idle);
  }
}

function toEvent(id, type, data) {
  const doc = JSON.parse(data);
  if (type === "stdout" || type === "stderr") {
    const bytes = "base64" in doc ? Buffer.from(doc.base64, "base64") : Buffer.from(doc.text ?? "", "utf8");
    return { id, type, data: bytes };
  }
  return { id, type, data: doc };
}

/** The exit code `execq run` gives for a result. */
export function exitCodeOf(result) {
  switch (result.status) {
    case "succeeded":
    case "failed":
      return result.exitCode;
    case "timed_out":
      return EXIT_TIMED_OUT;
    case "canceled":
      return EXIT_CANCELED;
    case "oom_killed":
      return EXIT_OOM_KILLED;
    default:
      return EXIT_EXECQ_FAILED;
  }
}

function input(b64Field, textField, value) {
  return typeof value === "string" ? { [textField]: value } : { [b64Field]: Buffer.from(value).toString("base64") };
}

async function apiError(resp) {
  const text = await resp.text();
  let problem;
  try {
    problem = JSON.parse(text);
  } catch {
    problem = { detail: text.trim() };
  }
  return new APIError(resp.status, problem, resp.headers.get("Retry-After") ?? undefined);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Writing collected files.

/**
 * Writes a result's collected files under dir, trusting nothing about them,
 * and returns [{path, reason}] for the files not written. A path is refused
 * when it is absolute, has "..", or (without globs) has a dot segment; with
 * globs, when none matches it. No directory that is a symbolic link is
 * entered, and a file is never written through a link, over anything but a
 * regular file, or over an existing file unless force is true. Modes keep
 * their permission bits only.
 */
export function writeFiles(dir, files, { globs, force = false } = {}) {
  const root = fs.realpathSync(dir);
  const skipped = [];
  for (const f of files) {
    try {
      writeFile(root, f, globs, force);
    } catch (e) {
      skipped.push({ path: f.path ?? "", reason: e.code ? `${e.code}: ${e.message}` : e.message });
    }
  }
  return skipped;
}

function writeFile(root, f, globs, force) {
  if (f.error) throw new Error(f.error);
  const name = workspacePath(f.path ?? "");
  if (globs && !matchAny(globs, name)) throw new Error("no collect glob names it");
  if (!globs && name.split("/").some((s) => s.startsWith("."))) {
    throw new Error("a dotfile, and no collect glob names it");
  }
  const parts = name.split("/");
  let at = root;
  for (const d of parts.slice(0, -1)) {
    at = path.join(at, d);
    let st;
    try {
      st = fs.lstatSync(at);
    } catch (e) {
      if (e.code !== "ENOENT") throw e;
      fs.mkdirSync(at, { mode: 0o755 });
      st = fs.lstatSync(at);
    }
    if (st.isSymbolicLink()) throw new Error(`${path.relative(root, at)} is a symbolic link; it is not followed`);
    if (!st.isDirectory()) throw new Error(`${path.relative(root, at)} is not a directory`);
  }
  const target = path.join(at, parts[parts.length - 1]);
  let st;
  try {
    st = fs.lstatSync(target);
  } catch (e) {
    if (e.code !== "ENOENT") throw e;
  }
  if (st) {
    if (st.isSymbolicLink()) throw new Error("a symbolic link is in its place; it is not followed");
    if (!st.isFile()) throw new Error("something other than a regular file is in its place");
    if (!force) throw new Error("the file exists; force overwrites it");
    fs.unlinkSync(target);
  }
  const mode = parseInt(String(f.mode ?? "0644"), 8) & 0o777 || 0o644;
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    fs.writeSync(fd, Buffer.from(f.content ?? "", "base64"));
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}

function workspacePath(p) {
  if (!p || p.includes("\0")) throw new Error("the path is empty or has a NUL byte");
  if (p.startsWith("/")) throw new Error("the path is absolute");
  if (p.split("/").includes("..")) throw new Error('the path contains ".."');
  const clean = path.posix.normalize(p).replace(/\/+$/, "");
  if (clean === "." || clean === "") throw new Error("the path names the directory itself");
  return clean;
}

/**
 * Whether name matches one of the collect globs as the worker matches them:
 * segment by segment, "**" for any number of directories, and no "*" or
 * "**" matching a dot segment unless the glob names it.
 */
export function matchAny(globs, name) {
  const segs = name.split("/");
  return globs.some((g) => match(path.posix.normalize(g).split("/"), segs));
}

function match(pattern, name) {
  if (pattern.length === 0) return name.length === 0;
  if (pattern[0] === "**") {
    for (let i = 0; i <= name.length; i++) {
      if (match(pattern.slice(1), name.slice(i))) return true;
      if (i < name.length && name[i].startsWith(".")) return false;
    }
    return false;
  }
  if (name.length === 0) return false;
  if (name[0].startsWith(".") && !pattern[0].startsWith(".")) return false;
  return segmentRegExp(pattern[0]).test(name[0]) && match(pattern.slice(1), name.slice(1));
}

function segmentRegExp(p) {
  let re = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = p.indexOf("]", i + 1);
      if (end < 0) {
        re += "\\[";
        continue;
      }
      let cls = p.slice(i + 1, end);
      if (cls.startsWith("^") || cls.startsWith("!")) cls = "^" + cls.slice(1);
      re += `[${cls.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}
