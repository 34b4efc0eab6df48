#!/usr/bin/env python3
"""test_cli_tty.py: `headroom run` on a terminal, checked under a pseudo-terminal: the load's
progress bar (and none when piped), the watermark status line during generation, and the chat
(no prompt on a terminal): a reply, the conversation kept, Ctrl-C stopping one answer and not the
chat, /bye ending it.
usage: test_cli_tty.py HEADROOM TINY_MODEL
"""
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import fcntl
import time

headroom, model = sys.argv[1], sys.argv[2]
failed = 0


def check(name, ok, detail=""):
    global failed
    if ok:
        print("ok - " + name)
    else:
        failed += 1
        print("not ok - " + name + ("\n  " + detail[-1500:].replace("\n", "\n  ") if detail else ""))


class Terminal:
    """A command on a pseudo-terminal of 24 rows and 100 columns; everything it writes is kept."""

    def __init__(self, args):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(args[0], args)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        self.text = b""

    def read(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            ready, _, _ = select.select([self.fd], [], [], max(0, deadline - time.time()))
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return False
            if not chunk:
                return False
            self.text += chunk
        return True

    def expect(self, pattern, seconds=60, start=0):
        """Waits until `pattern` (bytes) appears after offset `start`; its end offset, or -1."""
        deadline = time.time() + seconds
        while True:
            at = self.text.find(pattern, start)
            if at >= 0:
                return at + len(pattern)
            if time.time() > deadline or not self.read(0.05) and self.text.find(pattern, start) < 0:
                return -1

    def send(self, data):
        os.write(self.fd, data)

    def wait(self, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.read(0.05)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        return None


# ---- a prompt given: progress bar, status line, watermark --------------------------------------
t = Terminal([headroom, "run", model, "Once upon a time", "-n", "400", "--temp", "0", "--ctx", "2048"])
code = t.wait(60)
out = t.text.decode("utf-8", "replace")
check("run on a terminal exits 0", code == 0, out)
check("the load shows a progress bar on the terminal", "loading tiny.gguf [" in out and "100%" in out, out[:400])
check("the bar is cleared when the load is done", "\r\x1b[K" in out)
check("the watermark status line is drawn on the bottom row during generation",
      "\x1b[1;23r" in out and "\x1b[24;1H" in out and "RSS" in out and "peak" in out and "available" in out, out[-800:])
check("the scroll region is given back at the end", "\x1b[r" in out)
check("the watermark line follows the statistics", "headroom: memory: peak RSS" in out, out[-400:])

# ---- piped: none of it ------------------------------------------------------------------------
piped = subprocess.run([headroom, "run", model, "Once upon a time", "-n", "8", "--temp", "0"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
err = piped.stderr.decode("utf-8", "replace")
check("piped: no progress bar, no escape sequences on stderr",
      piped.returncode == 0 and "loading" not in err and "\x1b" not in err and "\r" not in err, err)
check("piped: stdout holds only the text", b"\x1b" not in piped.stdout and len(piped.stdout) > 0)

# ---- the chat --------------------------------------------------------------------------------
t = Terminal([headroom, "run", model, "-n", "12", "--temp", "0"])
at = t.expect(b">>> ", 60)
check("no prompt on a terminal: a chat prompt after the load", at >= 0, t.text.decode("utf-8", "replace"))
t.send(b"Hello there\n")
at2 = t.expect(b">>> ", 60, at)
answer = t.text[at:at2].decode("utf-8", "replace") if at2 >= 0 else ""
check("a line gets an answer, then the prompt again", at2 >= 0 and len(answer.strip()) > len("Hello there"), answer)
t.send(b"\x1b[A")   # Up: the line before comes back, and Enter sends it again
recalled = t.expect(b">>> Hello there", 10, at2)
t.send(b"\n")
at2b = t.expect(b">>> ", 60, recalled if recalled >= 0 else at2)
check("Up recalls the line before; Enter sends it again", recalled >= 0 and at2b >= 0, t.text[at2:].decode("utf-8", "replace"))
t.send(b"abc\x7f\x7fz\n")   # Backspace twice: "az"
edited = t.expect(b"\r\x1b[K>>> az", 10, at2b)   # redrawn after each Backspace, then z echoed
after = t.expect(b">>> ", 60, edited if edited >= 0 else at2b)
t.send(b"/help\n")
helped = t.expect(b"commands: /clear", 10, after if after >= 0 else at2b)
check("Backspace edits the line (abc, two Backspaces, z: az); /help lists the commands", edited >= 0 and helped >= 0,
      t.text[at2b:].decode("utf-8", "replace"))
t.send(b"/clear\n")
at3 = t.expect(b"(the conversation is forgotten)", 10, at2b)
check("/clear forgets the conversation", at3 >= 0)
t.send(b"/bye\n")
code = t.wait(20)
check("/bye ends the chat, exit 0", code == 0, t.text.decode("utf-8", "replace")[-300:])

# Ctrl-C stops one long answer, the chat goes on and remembers
t = Terminal([headroom, "run", model, "-n", "100000", "--temp", "0", "--ctx", "4096"])
at = t.expect(b">>> ", 60)
t.send(b"Tell me everything\n")
started = t.expect(b"tokens/s", 60, at)   # the status line: the answer is streaming
t.send(b"\x03")
stopped = t.expect(b"(stopped)", 20, at)
prompt_again = t.expect(b">>> ", 20, stopped if stopped >= 0 else at)
check("Ctrl-C stops the answer and the chat prompts again", started >= 0 and stopped >= 0 and prompt_again >= 0,
      t.text.decode("utf-8", "replace")[-600:])
t.send(b"\x03")
hint = t.expect(b"Use Ctrl-D or /bye to leave.", 10, prompt_again if prompt_again >= 0 else at)
check("Ctrl-C at the prompt says how to leave, and does not", hint >= 0, t.text.decode("utf-8", "replace")[-300:])
t.send(b"\x04")
code = t.wait(20)
check("Ctrl-D ends the chat, exit 0", code == 0, t.text.decode("utf-8", "replace")[-300:])

print(f"{failed} failed" if failed else "all passed")
sys.exit(1 if failed else 0)
