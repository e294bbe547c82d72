"""Ctrl-Z and fg through a real pseudo-terminal, as a person at a shell:
bash runs `smartem-init sleep N` in the foreground; Ctrl-Z must give the
prompt back with the job stopped (the service stopped too), `fg` must
resume it, Ctrl-C must end it with 130.

    python3 job_control.py SMARTEM_INIT_BINARY
Exits 0 on success, prints what went wrong otherwise."""

import os
import pty
import select
import sys
import time

BIN = sys.argv[1]
SLEEP = "1005.5"  # names this test's service in /proc


def state_of_service():
    want = f"sleep\0{SLEEP}\0".encode()
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if open(f"/proc/{p}/cmdline", "rb").read() == want:
                for line in open(f"/proc/{p}/status"):
                    if line.startswith("State:"):
                        return line.split()[1]
        except OSError:
            pass
    return None


pid, fd = pty.fork()
if pid == 0:
    os.environ["PS1"] = "PROMPT> "
    os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])

buf = b""


def read_until(pat, timeout=10.0):
    global buf
    end = time.time() + timeout
    while time.time() < end:
        if pat in buf:
            i = buf.index(pat) + len(pat)
            out, buf = buf[:i], buf[i:]
            return out
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    sys.exit(f"timed out waiting for {pat!r}; the terminal shows {buf[-400:]!r}")


def wait_state(want, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if state_of_service() == want:
            return
        time.sleep(0.05)
    sys.exit(f"service state {state_of_service()!r}, expected {want!r}")


read_until(b"PROMPT> ")
os.write(fd, f"{BIN} -qq sleep {SLEEP}\n".encode())
wait_state("S")
os.write(fd, b"\x1a")  # Ctrl-Z
out = read_until(b"PROMPT> ", 5)
if b"Stopped" not in out:
    sys.exit(f"no 'Stopped' job after Ctrl-Z: {out!r}")
wait_state("T")
os.write(fd, b"fg\n")
wait_state("S")
time.sleep(0.3)
os.write(fd, b"\x03")  # Ctrl-C
read_until(b"PROMPT> ", 5)
os.write(fd, b"echo EXIT=$?\n")
out = read_until(b"PROMPT> ", 5)
if b"EXIT=130" not in out:
    sys.exit(f"expected exit 130 after Ctrl-C: {out!r}")
if state_of_service() is not None:
    sys.exit("the service outlived Ctrl-C")
os.write(fd, b"exit\n")
print("job control ok")
