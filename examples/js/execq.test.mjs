// Unit tests of the JavaScript client: node --test
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { exitCodeOf, matchAny, readSSE, writeFiles } from "./execq.mjs";

const collected = (p, content = "x", extra = {}) => ({
  path: p, size: content.length, mode: "0644", content: Buffer.from(content).toString("base64"), ...extra,
});

async function* chunks(...parts) {
  for (const p of parts) yield new TextEncoder().encode(p);
}

test("readSSE parses events split anywhere, comments and multi-line data", async () => {
  const body = chunks(": ping\n\n", "id: 1-0\nevent: started\ndata: {\"attempt\":1}\n\nid: 2-",
    "0\nevent: stdout\ndata: {\"text\":\"hi\\n\"}\n\n", "id: 3-0\r\nevent: stderr\r\ndata: {\"base64\":\r\ndata: \"/w==\"}\r\n\r\n",
    "id: 4-0\nevent: exit\ndata: {\"status\":\"failed\",\"exitCode\":3}\n\n");
  const got = [];
  for await (const ev of readSSE(body)) got.push(ev);
  assert.deepEqual(got.map((e) => [e.id, e.type]), [["1-0", "started"], ["2-0", "stdout"], ["3-0", "stderr"], ["4-0", "exit"]]);
  assert.deepEqual(got[0].data, { attempt: 1 });
  assert.equal(got[1].data.toString(), "hi\n");
  assert.deepEqual([...got[2].data], [0xff]);
  assert.deepEqual(got[3].data, { status: "failed", exitCode: 3 });
});

test("matchAny matches globs as the worker does", () => {
  const cases = [
    [["*.txt"], "a.txt", true], [["*.txt"], "d/a.txt", false], [["**/*.txt"], "d/e/a.txt", true],
    [["**/*.txt"], "a.txt", true], [["*"], ".env", false], [["**"], ".git/config", false],
    [[".git/*"], ".git/config", true], [["out/**"], "out/a/b", true], [["a+b.txt"], "a+b.txt", true],
  ];
  for (const [globs, name, want] of cases) assert.equal(matchAny(globs, name), want, `${globs} ${name}`);
});

function setup() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "execq-js-"));
  const dir = path.join(tmp, "out");
  fs.mkdirSync(dir);
  const outside = path.join(tmp, "outside");
  fs.writeFileSync(outside, "keep");
  return { tmp, dir, outside, done: () => fs.rmSync(tmp, { recursive: true, force: true }) };
}

test("writeFiles writes files and directories with permission bits only", (t) => {
  const s = setup();
  t.after(s.done);
  assert.deepEqual(writeFiles(s.dir, [collected("a/b/c.txt", "hello", { mode: "4755" })]), []);
  assert.equal(fs.readFileSync(path.join(s.dir, "a/b/c.txt"), "utf8"), "hello");
  assert.equal(fs.statSync(path.join(s.dir, "a/b/c.txt")).mode & 0o7777, 0o755);
});

test("writeFiles refuses paths that leave the directory", (t) => {
  const s = setup();
  t.after(s.done);
  const skipped = writeFiles(s.dir, [collected("../outside"), collected("/etc/passwd"), collected("a/../../outside"), collected("")]);
  assert.equal(skipped.length, 4);
  assert.equal(fs.readFileSync(s.outside, "utf8"), "keep");
});

test("writeFiles never follows a symbolic link", (t) => {
  const s = setup();
  t.after(s.done);
  fs.symlinkSync(s.outside, path.join(s.dir, "link"));
  fs.symlinkSync(s.tmp, path.join(s.dir, "linkdir"));
  const skipped = writeFiles(s.dir, [collected("link"), collected("linkdir/outside")], { force: true });
  assert.deepEqual(skipped.map((x) => x.path), ["link", "linkdir/outside"]);
  assert.equal(fs.readFileSync(s.outside, "utf8"), "keep");
});

test("writeFiles keeps existing files unless forced", (t) => {
  const s = setup();
  t.after(s.done);
  fs.writeFileSync(path.join(s.dir, "a.txt"), "mine");
  assert.deepEqual(writeFiles(s.dir, [collected("a.txt", "theirs")]).map((x) => x.path), ["a.txt"]);
  assert.equal(fs.readFileSync(path.join(s.dir, "a.txt"), "utf8"), "mine");
  assert.deepEqual(writeFiles(s.dir, [collected("a.txt", "theirs")], { force: true }), []);
  assert.equal(fs.readFileSync(path.join(s.dir, "a.txt"), "utf8"), "theirs");
});

test("writeFiles writes dotfiles only when a glob names them, and nothing no glob names", (t) => {
  const s = setup();
  t.after(s.done);
  assert.equal(writeFiles(s.dir, [collected(".bashrc"), collected("d/.git/config")]).length, 2);
  const skipped = writeFiles(s.dir, [collected("a.bin"), collected("b.txt", "x", { error: "a symbolic link" })], { globs: ["*.txt"] });
  assert.deepEqual(skipped.map((x) => x.path), ["a.bin", "b.txt"]);
  assert.deepEqual(fs.readdirSync(s.dir), []);
  assert.deepEqual(writeFiles(s.dir, [collected(".bashrc")], { globs: [".bashrc"] }), []);
});

test("exitCodeOf", () => {
  assert.equal(exitCodeOf({ status: "failed", exitCode: 3 }), 3);
  assert.equal(exitCodeOf({ status: "timed_out", exitCode: -1 }), 124);
  assert.equal(exitCodeOf({ status: "canceled" }), 130);
  assert.equal(exitCodeOf({ status: "oom_killed" }), 137);
  assert.equal(exitCodeOf({ status: "error" }), 125);
});
