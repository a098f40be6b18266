#!/usr/bin/env node
// Runs a command on an execq server, like `execq run`, with Node's
// built-in fetch only:
//
//   node run.mjs http://127.0.0.1:8088 sh -c 'echo hi; exit 3'; echo $?   # hi, 3
//
// The command's stdout and stderr are copied to this program's as they are
// written, byte for byte; it exits with the command's exit code (124 timed
// out, 125 execq failed, 130 canceled, 137 memory limit). Ctrl-C cancels
// the execution. The bearer token, if the server wants one, is read from
// EXECQ_API_TOKEN. Options come before the URL:
//   --image I  --timeout SECONDS  --stdin  --id ID  --collect GLOB  --dir DIR  --force
// (--id: running again with the same ID never runs the command twice)

import fs from "node:fs";
import { parseArgs } from "node:util";
import { Client, EXIT_CANCELED, EXIT_EXECQ_FAILED, exitCodeOf, writeFiles } from "./execq.mjs";

function usage(msg) {
  process.stderr.write(`run.mjs: ${msg}\nusage: run.mjs [--image I] [--timeout S] [--stdin] [--id ID] [--collect GLOB]... [--dir DIR] [--force] URL CMD [ARG...]\n`);
  process.exit(2);
}

// Options end at the first positional argument: the rest is the command's.
const argv = process.argv.slice(2);
const first = argv.findIndex((a, i) => !a.startsWith("-") && !["--image", "--timeout", "--collect", "--dir", "--id"].includes(argv[i - 1]));
if (first < 0) usage("give the server's URL and the command to run");
let opts;
try {
  opts = parseArgs({
    args: argv.slice(0, first),
    options: {
      image: { type: "string" },
      timeout: { type: "string" },
      stdin: { type: "boolean" },
      id: { type: "string" },
      collect: { type: "string", multiple: true },
      dir: { type: "string", default: "." },
      force: { type: "boolean" },
    },
  }).values;
} catch (e) {
  usage(e.message);
}
const [url, ...cmd] = argv.slice(first);
if (cmd.length === 0) usage("give the command to run");

const client = new Client(url, { token: process.env.EXECQ_API_TOKEN });
const fields = { image: opts.image, collect: opts.collect, idempotencyKey: opts.id };
if (opts.timeout) fields.timeoutMs = Math.round(Number(opts.timeout) * 1000);
if (opts.stdin) fields.stdin = fs.readFileSync(0);

let id;
try {
  id = await client.submit(cmd, fields);
} catch (e) {
  process.stderr.write(`run.mjs: ${e.message}\n`);
  process.exit(EXIT_EXECQ_FAILED);
}
process.on("SIGINT", async () => {
  await client.cancel(id).catch(() => {});
  process.stderr.write(`run.mjs: canceled ${id}\n`);
  process.exit(EXIT_CANCELED);
});

const write = (stream, data) => new Promise((resolve) => (stream.write(data) ? resolve() : stream.once("drain", resolve)));
for await (const ev of client.events(id)) {
  if (ev.type === "stdout") await write(process.stdout, ev.data);
  else if (ev.type === "stderr") await write(process.stderr, ev.data);
}
const result = await client.wait(id);
if (result.error) process.stderr.write(`run.mjs: ${result.status}: ${result.error}\n`);
if (opts.collect) {
  for (const s of writeFiles(opts.dir, result.files ?? [], { globs: opts.collect, force: opts.force })) {
    process.stderr.write(`run.mjs: not written: ${s.path}: ${s.reason}\n`);
  }
}
process.exitCode = exitCodeOf(result);
