"""The Python client in a few lines: python3 example.py URL"""

import sys

import execq

c = execq.Client(sys.argv[1], token=None)
eid = c.submit(["sh", "-c", "echo 6; sleep 0.2; echo 7 >&2; exit 42"])
for ev in c.events(eid):  # started, stdout, stderr, exit: as they happen
    if ev.type in ("stdout", "stderr"):
        print(ev.type, ev.data)  # the bytes the command wrote
result = c.wait(eid)  # the result JSON, as a dict
print(result["status"], result["exitCode"])
