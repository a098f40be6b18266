"""A minimal MCP client with Python's standard library only: it starts
`execq mcp`, runs `sh -c 'echo hi; exit 3'` through the execute tool with
a progress token, and prints one JSON line: the progress messages and the
tool result. Usage: raw_client.py EXECQ REDIS_URL"""

import json
import subprocess
import sys


def main():
    exe, url = sys.argv[1], sys.argv[2]
    proc = subprocess.Popen([exe, "mcp", "--redis", url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)

    def send(msg):
        proc.stdin.write(json.dumps(msg) + "\n")
        proc.stdin.flush()

    def answer(want_id, progress):
        for line in proc.stdout:
            msg = json.loads(line)
            if msg.get("method") == "notifications/progress":
                progress.append(msg["params"]["message"])
            elif msg.get("id") == want_id:
                return msg
        raise SystemExit("execq mcp closed its stdout")

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
          "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                     "clientInfo": {"name": "python", "version": "1"}}})
    init = answer(1, [])
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
          "params": {"name": "execute", "arguments": {"command": "echo hi; exit 3"},
                     "_meta": {"progressToken": 7}}})
    progress = []
    call = answer(2, progress)
    proc.stdin.close()
    code = proc.wait(timeout=30)
    print(json.dumps({"protocolVersion": init["result"]["protocolVersion"],
                      "progress": progress, "result": call["result"], "exit": code}))


main()
