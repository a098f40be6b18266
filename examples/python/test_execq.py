"""Unit tests of the Python client: python3 -m unittest -v test_execq"""

import base64
import os
import tempfile
import unittest

import execq


def collected(path, content=b"x", mode="0644", **extra):
    f = {"path": path, "size": len(content), "mode": mode,
         "content": base64.b64encode(content).decode()}
    f.update(extra)
    return f


class ReadSSE(unittest.TestCase):
    def test_events_comments_and_multiline_data(self):
        stream = [
            b": ping\n", b"\n",
            b"id: 1-0\n", b"event: started\n", b'data: {"attempt":1}\n', b"\n",
            b"id: 2-0\n", b"event: stdout\n", b'data: {"text":"hi\\n"}\n', b"\n",
            b"id: 3-0\r\n", b"event: stderr\r\n", b'data: {"base64":\r\n', b'data: "/w=="}\r\n', b"\r\n",
            b"id: 4-0\n", b"event: exit\n", b'data: {"status":"failed","exitCode":3}\n', b"\n",
        ]
        got = [(e.id, e.type, e.data) for e in execq.read_sse(stream)]
        self.assertEqual(got, [
            ("1-0", "started", {"attempt": 1}),
            ("2-0", "stdout", b"hi\n"),
            ("3-0", "stderr", b"\xff"),
            ("4-0", "exit", {"status": "failed", "exitCode": 3}),
        ])


class MatchAny(unittest.TestCase):
    def test_globs(self):
        cases = [
            (["*.txt"], "a.txt", True),
            (["*.txt"], "d/a.txt", False),
            (["**/*.txt"], "d/e/a.txt", True),
            (["**/*.txt"], "a.txt", True),
            (["*"], ".env", False),
            (["**"], ".git/config", False),
            ([".git/*"], ".git/config", True),
            (["out/**"], "out/a/b", True),
        ]
        for globs, name, want in cases:
            with self.subTest(globs=globs, name=name):
                self.assertEqual(execq.match_any(globs, name), want)


class WriteFiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = os.path.join(self.tmp.name, "out")
        os.mkdir(self.dir)
        self.outside = os.path.join(self.tmp.name, "outside")
        with open(self.outside, "w") as f:
            f.write("keep")

    def read(self, *parts):
        with open(os.path.join(self.dir, *parts), "rb") as f:
            return f.read()

    def test_writes_files_and_directories_with_permission_bits_only(self):
        skipped = execq.write_files(self.dir, [collected("a/b/c.txt", b"hello", "4755")])
        self.assertEqual(skipped, [])
        self.assertEqual(self.read("a", "b", "c.txt"), b"hello")
        self.assertEqual(os.stat(os.path.join(self.dir, "a/b/c.txt")).st_mode & 0o7777, 0o755)

    def test_refuses_paths_that_leave_the_directory(self):
        files = [collected("../outside"), collected("/etc/passwd"), collected("a/../../outside"), collected("")]
        skipped = execq.write_files(self.dir, files)
        self.assertEqual(len(skipped), 4)
        with open(self.outside) as f:
            self.assertEqual(f.read(), "keep")

    def test_never_follows_a_symbolic_link(self):
        os.symlink(self.outside, os.path.join(self.dir, "link"))
        os.symlink(self.tmp.name, os.path.join(self.dir, "linkdir"))
        skipped = execq.write_files(self.dir, [collected("link"), collected("linkdir/outside")], force=True)
        self.assertEqual([p for p, _ in skipped], ["link", "linkdir/outside"])
        with open(self.outside) as f:
            self.assertEqual(f.read(), "keep")

    def test_keeps_existing_files_unless_forced(self):
        with open(os.path.join(self.dir, "a.txt"), "w") as f:
            f.write("mine")
        skipped = execq.write_files(self.dir, [collected("a.txt", b"theirs")])
        self.assertEqual([p for p, _ in skipped], ["a.txt"])
        self.assertEqual(self.read("a.txt"), b"mine")
        self.assertEqual(execq.write_files(self.dir, [collected("a.txt", b"theirs")], force=True), [])
        self.assertEqual(self.read("a.txt"), b"theirs")

    def test_dotfiles_only_when_a_glob_names_them(self):
        skipped = execq.write_files(self.dir, [collected(".bashrc"), collected("d/.git/config")])
        self.assertEqual(len(skipped), 2)
        self.assertEqual(execq.write_files(self.dir, [collected(".bashrc")], globs=[".bashrc"]), [])

    def test_files_no_glob_names_and_files_with_errors_are_not_written(self):
        files = [collected("a.bin"), collected("b.txt", error="a symbolic link; not collected")]
        skipped = execq.write_files(self.dir, files, globs=["*.txt"])
        self.assertEqual([p for p, _ in skipped], ["a.bin", "b.txt"])
        self.assertEqual(os.listdir(self.dir), [])


class ExitCodeOf(unittest.TestCase):
    def test_codes(self):
        self.assertEqual(execq.exit_code_of({"status": "failed", "exitCode": 3}), 3)
        self.assertEqual(execq.exit_code_of({"status": "timed_out", "exitCode": -1}), 124)
        self.assertEqual(execq.exit_code_of({"status": "canceled"}), 130)
        self.assertEqual(execq.exit_code_of({"status": "oom_killed"}), 137)
        self.assertEqual(execq.exit_code_of({"status": "error"}), 125)


if __name__ == "__main__":
    unittest.main()
