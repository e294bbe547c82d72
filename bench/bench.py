"""smartem-init against its peers, one machine, one run. See bench/run."""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSYBOX = "/bin/busybox"


def peers(init):
    """name -> (binary, argv prefix before the command). gosu is no init: it
    execs the command, so the PID-1 rows do not apply to it."""
    return {
        "smartem-init": (init, [init, "-qq", "--"]),
        "tini": ("/usr/bin/tini", ["/usr/bin/tini", "-s", "--"]),
        "tini-static": ("/usr/bin/tini-static", ["/usr/bin/tini-static", "-s", "--"]),
        "dumb-init": ("/usr/bin/dumb-init", ["/usr/bin/dumb-init"]),
        "catatonit": ("/usr/bin/catatonit", ["/usr/bin/catatonit", "--"]),
        "gosu": ("/usr/sbin/gosu", ["/usr/sbin/gosu", "0:0"]),
    }


def is_init(name):
    return name != "gosu"


def size_rows(table):
    out = {}
    for name, (path, _) in table.items():
        kind = subprocess.run(["file", "-b", path], capture_output=True, text=True).stdout
        static = "statically linked" in kind or "static-pie linked" in kind
        out[name] = {"bytes": os.path.getsize(path), "static": static}
    return out


def startup(table, runs, warmup, rounds):
    """Each round is one hyperfine call with every command, so they share
    the conditions; the order rotates from round to round, and each row is
    the median over the rounds of that round's mean. On this shared machine
    a single call moved one init by 0.3 ms when a burst of load fell on its
    turn: the median of several rounds is what repeats."""
    commands = [("direct", f"{BUSYBOX} true")] + [
        (name, " ".join(prefix + [BUSYBOX, "true"])) for name, (_, prefix) in table.items()]
    means = {name: [] for name, _ in commands}
    for i in range(rounds):
        order = commands[i % len(commands):] + commands[:i % len(commands)]
        with tempfile.TemporaryDirectory() as d:
            export = Path(d) / "h.json"
            cmd = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(runs),
                   "--export-json", str(export)]
            for name, line in order:
                cmd += ["-n", name, line]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for r in json.loads(export.read_text())["results"]:
                means[r["command"]].append(r["mean"] * 1e3)
    direct = statistics.median(means["direct"])
    out = {"direct": {"mean_ms": direct, "overhead_ms": 0.0, "round_means_ms": means["direct"]}}
    for name in table:
        m = statistics.median(means[name])
        overheads = [a - b for a, b in zip(means[name], means["direct"])]
        out[name] = {"mean_ms": m, "overhead_ms": statistics.median(overheads),
                     "round_means_ms": means[name], "round_overheads_ms": overheads}
    return out


def children(pid):
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    except OSError:
        return []


def start_pid1(prefix, command, stdout=subprocess.DEVNULL, cpu=None):
    """Runs prefix+command as PID 1 of a new PID namespace (on CPU `cpu`
    alone when given); returns the unshare process and the init's pid in our
    namespace."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    proc = subprocess.Popen(pin + ["unshare", "--pid", "--fork", "--mount-proc"] + prefix + command,
                            stdout=stdout, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        kids = children(proc.pid)
        if kids and children(kids[0]):
            return proc, kids[0]
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError(f"{prefix[0]} did not start its child")


def status_kb(pid, key, path="status"):
    text = Path(f"/proc/{pid}/{path}").read_text()
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


def memory(table):
    out = {}
    for name, (_, prefix) in table.items():
        if not is_init(name):
            continue
        proc, pid = start_pid1(prefix, [BUSYBOX, "sleep", "1000"])
        time.sleep(0.3)
        out[name] = {"rss_kb": status_kb(pid, "VmRSS"), "pss_kb": status_kb(pid, "Pss", "smaps_rollup")}
        os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=10)
    return out


def latency(table, testsvc, count):
    """All inits run at once and take turns, one signal each per round, so a
    burst of noise on this shared machine lands on every init alike rather
    than on whichever was being measured at the time. With two CPUs or more
    the sender is pinned to one and every init with its child to another, so
    each init gets the same path (a cross-CPU wake-up, then init and child
    sharing a CPU) instead of whatever placement the scheduler chose: that
    placement moved medians by 20 us from run to run, more than any init's
    own work."""
    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) >= 2
    saved = set(cpus)
    if pinned:
        os.sched_setaffinity(0, {cpus[0]})
    running = {}
    for name, (_, prefix) in table.items():
        if not is_init(name):
            continue
        proc, pid = start_pid1(prefix, [testsvc, "latency"], stdout=subprocess.PIPE,
                               cpu=cpus[1] if pinned else None)
        svc = children(pid)[0]
        deadline = time.time() + 5
        while time.time() < deadline:  # the service has blocked its signals
            if re.search(r"^SigBlk:\s+0*[1-9a-f]", Path(f"/proc/{svc}/status").read_text(), re.M):
                break
            time.sleep(0.005)
        running[name] = (proc, pid, [])
    for _ in range(count):
        for proc, pid, samples in running.values():
            t0 = time.monotonic_ns()
            os.kill(pid, signal.SIGUSR1)
            t1 = int(proc.stdout.readline())
            samples.append((t1 - t0) / 1e3)
    os.sched_setaffinity(0, saved)
    out = {}
    for name, (proc, pid, samples) in running.items():
        os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=10)
        samples.sort()
        out[name] = {"median_us": statistics.median(samples), "p99_us": samples[int(len(samples) * 0.99) - 1],
                     "count": count}
    return out


def reaping(table, testsvc, orphans, repeats):
    out = {}
    for name, (_, prefix) in table.items():
        if not is_init(name):
            continue
        times = []
        for _ in range(repeats):
            res = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc"] + prefix + [testsvc, "orphans", str(orphans)],
                                 capture_output=True, text=True, timeout=120)
            times.append(int(res.stdout.strip()))
        out[name] = {"median_ms": statistics.median(times), "max_ms": max(times), "runs_ms": times,
                     "orphans": orphans}
    return out


def docker_stop(table, testsvc, repeats):
    """A scratch container per static init, its service a default-disposition
    sleeper: docker stop's SIGTERM must reach it through the init."""
    out = {}
    sizes = size_rows(table)
    for name, (path, prefix) in table.items():
        if not sizes[name]["static"]:
            out[name] = {"note": "not static: cannot run in a scratch image"}
            continue
        with tempfile.TemporaryDirectory() as d:
            Path(d, "init").write_bytes(Path(path).read_bytes())
            Path(d, "svc").write_bytes(Path(testsvc).read_bytes())
            os.chmod(Path(d, "init"), 0o755)
            os.chmod(Path(d, "svc"), 0o755)
            entry = ["/init"] + prefix[1:] + ["/svc", "sleep"]
            Path(d, "Dockerfile").write_text("FROM scratch\nCOPY init svc /\nENTRYPOINT " + json.dumps(entry) + "\n")
            tag = f"smartem-bench:{name}"
            subprocess.run(["docker", "build", "-q", "-t", tag, d], check=True, capture_output=True,
                           env={**os.environ, "DOCKER_BUILDKIT": "0"})
        times = []
        for _ in range(repeats):
            cid = subprocess.run(["docker", "run", "-d", "--network", "none", tag], check=True,
                                 capture_output=True, text=True).stdout.strip()
            for _ in range(200):
                if "svc" in subprocess.run(["docker", "top", cid], capture_output=True, text=True).stdout:
                    break
                time.sleep(0.05)
            t0 = time.monotonic()
            subprocess.run(["docker", "stop", "-t", "10", cid], check=True, capture_output=True)
            times.append(time.monotonic() - t0)
            code = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", cid], capture_output=True,
                                  text=True).stdout.strip()
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        out[name] = {"median_s": statistics.median(times), "exit_code": int(code)}
    return out


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def markdown(res):
    names = list(res["size"])
    head = "| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = []

    def row(title, f):
        rows.append(f"| {title} | " + " | ".join(f(n) for n in names) + " |")

    row("size (bytes)", lambda n: f"{res['size'][n]['bytes']:,}")
    row("static", lambda n: "yes" if res["size"][n]["static"] else "no")
    row(f"startup `X -- true` mean, median of rounds (ms; direct {res['startup']['direct']['mean_ms']:.2f})",
        lambda n: f"{res['startup'][n]['mean_ms']:.2f}")
    row("startup overhead over direct exec (ms)", lambda n: f"{res['startup'][n]['overhead_ms']:.2f}")
    row("idle VmRSS as PID 1 (kB)", lambda n: fmt(res["memory"].get(n, {}).get("rss_kb"), "d"))
    row("idle Pss as PID 1 (kB)", lambda n: fmt(res["memory"].get(n, {}).get("pss_kb"), "d"))
    row("SIGUSR1 latency median (µs)", lambda n: fmt(res["latency"].get(n, {}).get("median_us"), ".1f"))
    row("SIGUSR1 latency p99 (µs)", lambda n: fmt(res["latency"].get(n, {}).get("p99_us"), ".1f"))
    row(f"{res['params']['orphans']:,} orphans reaped, median (ms)",
        lambda n: fmt(res["reaping"].get(n, {}).get("median_ms"), ".0f"))
    row(f"{res['params']['orphans']:,} orphans reaped, slowest of {res['params']['repeats']} (ms)",
        lambda n: fmt(res["reaping"].get(n, {}).get("max_ms"), ".0f"))
    if res.get("docker_stop"):
        def stop(n):
            d = res["docker_stop"].get(n, {})
            return "n/a (dynamic)" if "note" in d else f"{d['median_s']:.2f} s (exit {d['exit_code']})"
        row("`docker stop` of a scratch container", stop)
    p = res["params"]
    notes = (f"\nMachine: {res['cpu']}, {os.cpu_count()} cores; {res['date']}. "
             f"Startup: hyperfine -N, {p['runs']} runs after {p['warmup']} warm-up, all commands in one call, "
             f"{p['rounds']} such calls in rotating order, median over the calls (overhead: median of each call's "
             f"difference to direct), "
             f"`true` is busybox's (static). Memory: the init as PID 1 of a new PID namespace with `sleep` as "
             f"its child. Latency: {p['signals']} SIGUSR1 sent to each init, one at a time, the inits taking turns, sender and inits pinned to different CPUs, until the child's "
             f"handler prints CLOCK_MONOTONIC. Reaping: {p['orphans']:,} orphans released at once, time until "
             f"kill(pid, 0) fails with ESRCH for every one (a zombie still answers), {p['repeats']} runs. gosu is not an init "
             f"(it execs the command), so its PID-1 rows are n/a and its `docker stop` waits for the 10 s "
             f"timeout: that is the problem an init solves.\n")
    return head + "\n".join(rows) + "\n" + notes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", required=True)
    ap.add_argument("--testsvc", required=True)
    ap.add_argument("--docker", action="store_true")
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--signals", type=int, default=1000)
    ap.add_argument("--orphans", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=PATH",
                    help="another smartem-init build, measured beside the shipped one")
    ap.add_argument("--config", action="append", default=[], metavar="NAME=ARGS",
                    help="the shipped smartem-init with these options too (e.g. the confinement's)")
    ap.add_argument("--only", default="", help="comma-separated steps (size,startup,memory,latency,reaping)")
    ap.add_argument("--name", default="", help="results go to bench/results/DATE-NAME.*; README untouched")
    args = ap.parse_args()
    table = peers(os.path.abspath(args.init))
    for v in args.variant:
        name, path = v.split("=", 1)
        path = os.path.abspath(path)
        table[name] = (path, [path, "-qq", "--"])
    for c in args.config:
        name, opts = c.split("=", 1)
        init = os.path.abspath(args.init)
        table[name] = (init, [init, "-qq", *opts.split(), "--"])
    testsvc = os.path.abspath(args.testsvc)
    res = {"date": datetime.date.today().isoformat(), "cpu": cpu_model(), "kernel": platform.release(),
           "params": {"runs": args.runs, "warmup": args.warmup, "rounds": args.rounds, "signals": args.signals, "orphans": args.orphans,
                      "repeats": args.repeats}}
    steps = [("size", lambda: size_rows(table)), ("startup", lambda: startup(table, args.runs, args.warmup, args.rounds)),
             ("memory", lambda: memory(table)), ("latency", lambda: latency(table, testsvc, args.signals)),
             ("reaping", lambda: reaping(table, testsvc, args.orphans, args.repeats))]
    if args.docker:
        steps.append(("docker_stop", lambda: docker_stop(table, testsvc, 3)))
    if args.only:
        steps = [s for s in steps if s[0] in args.only.split(",")]
    for key, step in steps:
        print(f"bench: {key}", file=sys.stderr)
        res[key] = step()
    if args.name:
        out = Path("bench/results")
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{res['date']}-{args.name}.json").write_text(json.dumps(res, indent=2) + "\n")
        print(json.dumps({k: res[k] for k in res if k in ("size", "startup", "memory")}, indent=2))
        return
    md = markdown(res)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{res['date']}.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / f"{res['date']}.md").write_text(md)
    (out / "latest.md").write_text(md)
    readme = Path("README.md")
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text and end in text:
        text = text[: text.index(start) + len(start)] + "\n" + md + text[text.index(end):]
        readme.write_text(text)
    print(md)


if __name__ == "__main__":
    main()
