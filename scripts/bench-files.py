#!/usr/bin/env python3
"""Compares file transfer on this machine, over loopback, in one run:
soquete (`files serve` + `files get`, verified and durable) against the
tools people would pick instead, each followed by `sync` of what it wrote:

  one big file (1 GiB; --size)      soquete with the file's hash known to
                                    the server, with a new server (which
                                    hashes the file as it sends it), over
                                    the secure channel (what encryption
                                    costs), and on the kernel data paths
                                    (a server sending by sendfile; splice
                                    at both ends), against
                                    nc, socat -b 1048576, rsync (daemon),
                                    the chapter's repositorio.py read with
                                    `soquete files get --seed`; and soquete
                                    and nc into tmpfs (/dev/shm, the page
                                    cache: no disk in the way), beside
                                    `dd` of zeros into tmpfs (the ceiling)
  10,000 files of 4 KiB (--files)   tar c | nc -> nc | tar x, rsync -r,
                                    soquete (one folder), the chapter's
                                    server (one connection per file)
  memory                            soquete server peak RSS while serving
                                    100 concurrent downloads

Every receiver writes to a fresh folder (ext4 is slow to create files right
after a mass delete, which would favour whoever runs first); big outputs
are deleted after each case, and every case starts after a `sync` (so no
tool's sync pays for the writes or trims of the case before). Each case
runs --runs times (default 3), the
tools taking turns, and the table gives the median. MB = 10^6 bytes.
"cpu s" is the CPU time of every process of the case (client, server,
sync); "server cpu s" the long-running server's share of it, where the
case has one.

Before each big-file run, 1.5 times the file's size is written into tmpfs
and deleted (--cold: not). This VM's host takes back memory the guest has
freed (free page reporting), and the first writes into it fault in the
host: without this, a run was fast or 3x slower depending on what ran
just before it, whichever the tool. With it, every tool starts alike, as
on a machine with no such host.

usage: scripts/bench-files.py [--quick] [--runs N] [--size MiB] [--files N] [--cold]
env:   SOQUETE_BIN (default: cargo build --release), CARGO_TARGET_DIR
needs: python3, ncat (as nc), socat, rsync, tar; a missing tool is skipped
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
DEADLINE = 300  # seconds any one step may take


def log(msg):
    print(f"bench-files: {msg}", file=sys.stderr, flush=True)


def soquete_bin():
    if os.environ.get("SOQUETE_BIN"):
        return os.environ["SOQUETE_BIN"]
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "soquete")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listen(port, limit=10.0):
    """Waits until something listens on `port` without connecting to it
    (a one-shot listener such as `ncat -l` would take the probe as its
    client)."""
    want = f":{port:04X} "
    end = time.monotonic() + limit
    while time.monotonic() < end:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    for line in f:
                        cols = line.split()
                        if len(cols) > 3 and (cols[1] + " ").endswith(want) and cols[3] == "0A":
                            return
            except OSError:
                pass
        time.sleep(0.005)
    raise RuntimeError(f"nothing listens on port {port}")


def wait_port(port, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Server:
    """A background server; `addr` from its `listening on` line or a port."""

    def __init__(self, argv, port=None, cwd=None):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.err, cwd=cwd,
                                     start_new_session=True)
        if port is not None:
            wait_port(port)
            self.addr = f"127.0.0.1:{port}"
            return
        end = time.monotonic() + 10
        while time.monotonic() < end:
            self.err.seek(0)
            m = re.search(rb"listening on ([0-9.]+:[0-9]+)", self.err.read())
            if m:
                self.addr = m.group(1).decode()
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{argv[0]} did not start")

    def cpu_s(self):
        """Its CPU time and that of the children it has reaped (the rsync
        daemon serves each connection in a child)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return sum(int(x) for x in fields[11:15]) / TICK
        except OSError:
            return 0.0

    def peak_rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def sh(cmd, **kw):
    subprocess.run(cmd, shell=True, check=True, timeout=DEADLINE, executable="/bin/bash", **kw)


def run(argv, **kw):
    subprocess.run(argv, check=True, timeout=DEADLINE, stdout=subprocess.DEVNULL, **kw)


def sync_path(path):
    """Durable: what was written under `path`, and the folder entries."""
    run(["sync", "-f", path])


def same_tree(a, b):
    r = subprocess.run(["diff", "-rq", a, b], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=DEADLINE)
    return r.returncode == 0


def rotated(cases, r):
    """`cases` starting at its `r`-th (mod its length)."""
    k = r % len(cases)
    return cases[k:] + cases[:k]


class Bench:
    def __init__(self, args, soq):
        self.args, self.soq = args, soq
        self.work = tempfile.mkdtemp(prefix="bench-files.", dir=args.dir)
        self.shm = tempfile.mkdtemp(prefix="bench-files.", dir="/dev/shm") if os.path.isdir(
            "/dev/shm") else None
        self.src = os.path.join(self.work, "src")
        self.big = os.path.join(self.src, "big")
        self.small = os.path.join(self.src, "small")
        self.results = []
        self.n = 0

    def fresh(self, base=None):
        self.n += 1
        d = os.path.join(base or self.work, f"out{self.n}")
        os.makedirs(d)
        return d

    def prepare(self):
        os.makedirs(self.big)
        os.makedirs(os.path.join(self.small, "many"))
        size = self.args.size << 20
        log(f"writing a {self.args.size} MiB file and {self.args.files} files of 4 KiB in {self.src}")
        with open("/dev/urandom", "rb") as r, open(os.path.join(self.big, "big.bin"), "wb") as w:
            left = size
            while left:
                chunk = r.read(min(left, 8 << 20))
                w.write(chunk)
                left -= len(chunk)
        for i in range(self.args.files):
            with open(os.path.join(self.small, "many", f"f{i:05}.bin"), "wb") as w:
                w.write(os.urandom(4096))
        sh(f"sync; cat {self.big}/big.bin > /dev/null")
        self.big_bytes = size
        self.small_bytes = 4096 * self.args.files

    def record(self, case, tool, nbytes, seconds, cpu, ok, note="", server_cpu=None):
        self.results.append(dict(case=case, tool=tool, bytes=nbytes, seconds=seconds, cpu_s=cpu,
                                 server_cpu_s=server_cpu, ok=ok, note=note))
        mbs = nbytes / seconds / 1e6 if seconds else 0
        log(f"{case} {tool}: {seconds:.2f} s, {mbs:,.0f} MB/s, cpu {cpu:.2f} s{'' if ok else ' WRONG OUTPUT'}")

    def warm_memory(self):
        """Writes and deletes 1.5 x the big file's size in tmpfs, so the
        pages the next run gets are ones the host still backs."""
        if not self.shm or self.args.cold:
            return
        path = os.path.join(self.shm, "warm")
        chunk = bytes(8 << 20)
        with open(path, "wb") as f:
            for _ in range(max(1, self.big_bytes * 3 // 2 // len(chunk))):
                f.write(chunk)
        os.unlink(path)

    def timed(self, case, tool, nbytes, body, check, servers=(), start=None):
        """Times `body()` (which returns the output folder to check). With
        `start`, a server it makes is started before the clock and stopped
        after it, and `body` gets it (its CPU counts once it is reaped)."""
        if case == "big":
            self.warm_memory()
        # Nothing left to write back from the cases before (the big ones
        # delete a GiB, and with `discard` its trim comes due at the next
        # journal commit: the next tool's sync paid for it).
        os.sync()
        fresh = start() if start else None
        s0 = sum(s.cpu_s() for s in servers)
        c0 = children_cpu() + s0
        t0 = time.perf_counter()
        try:
            out = body(fresh) if fresh else body()
            if fresh:
                fresh.stop()
        except (subprocess.SubprocessError, RuntimeError, OSError) as e:
            if fresh:
                fresh.stop()
            self.results.append(dict(case=case, tool=tool, bytes=nbytes, seconds=None, cpu_s=None,
                                     ok=False, note=str(e).splitlines()[0][:80]))
            log(f"{case} {tool}: failed: {e}")
            return
        dt = time.perf_counter() - t0
        s1 = sum(s.cpu_s() for s in servers)
        cpu = children_cpu() + s1 - c0
        ok = check(out)
        # A long-running server's own share (the sendfile rows' point).
        self.record(case, tool, nbytes, dt, cpu, ok, server_cpu=s1 - s0 if servers else None)
        if out and out.startswith((self.work, self.shm or self.work)) and case == "big":
            shutil.rmtree(out, ignore_errors=True)

    # -- one big file ---------------------------------------------------------

    def big_ok(self, out):
        return out is not None and same_tree(self.big, out)

    def big_nc(self, base=None, durable=True):
        out = self.fresh(base)
        port = free_port()
        dst = os.path.join(out, "big.bin")
        recv = subprocess.Popen(f"exec ncat -l --recv-only 127.0.0.1 {port} > {dst}", shell=True)
        wait_listen(port)
        sh(f"ncat --send-only 127.0.0.1 {port} < {self.big}/big.bin")
        recv.wait(DEADLINE)
        if durable:
            sync_path(dst)
        return out

    def big_socat(self):
        out = self.fresh()
        port = free_port()
        dst = os.path.join(out, "big.bin")
        recv = subprocess.Popen(["socat", "-b", "1048576", "-u",
                                 f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr",
                                 f"CREATE:{dst}"])
        wait_listen(port)
        run(["socat", "-b", "1048576", "-u", f"OPEN:{self.big}/big.bin",
             f"TCP:127.0.0.1:{port}"])
        recv.wait(DEADLINE)
        sync_path(dst)
        return out

    def big_dd(self):
        """The page cache's own speed here: what writing the file's size into
        tmpfs costs with no network and no reading at all, the ceiling of
        every `-> tmpfs` row. (On this VM, pages the guest has not touched
        lately cost a fault in the host, so this ceiling moves from run to
        run: that is why it runs in the same rounds.)"""
        out = self.fresh(self.shm)
        run(["dd", "if=/dev/zero", f"of={os.path.join(out, 'zero.bin')}", "bs=1M",
             f"count={self.args.size}"], stderr=subprocess.DEVNULL)
        return out

    def soquete_get(self, server, names, base=None, extra=()):
        out = self.fresh(base)
        run([self.soq, "-q", "files", "get", server.addr, *names, "-o", out, *extra])
        return out

    def rsync(self, daemon, module_path, base=None):
        out = self.fresh(base)
        run(["rsync", "-a", "--whole-file", f"rsync://{daemon.addr}/src/{module_path}", out + "/"])
        sync_path(out)
        return out

    def start_rsync(self):
        conf = os.path.join(self.work, "rsyncd.conf")
        with open(conf, "w") as f:
            # As root, rsyncd would drop to `nobody`, who cannot enter the
            # work folder (mkdtemp makes it 0700): stay the running user.
            f.write(f"use chroot = false\nuid = {os.getuid()}\ngid = {os.getgid()}\n"
                    f"[src]\npath = {self.src}\nread only = true\n")
        port = free_port()
        return Server(["rsync", "--daemon", "--no-detach", f"--config={conf}",
                       "--address=127.0.0.1", f"--port={port}"], port=port)

    # -- small files ------------------------------------------------------------

    def small_ok(self, out):
        return out is not None and same_tree(os.path.join(self.small, "many"),
                                             os.path.join(out, "many"))

    def small_tar_nc(self):
        out = self.fresh()
        port = free_port()
        recv = subprocess.Popen(f"ncat -l --recv-only 127.0.0.1 {port} | tar x -C {out}",
                                shell=True)
        wait_listen(port)
        sh(f"tar c -C {self.small} many | ncat --send-only 127.0.0.1 {port}")
        recv.wait(DEADLINE)
        sync_path(out)
        return out

    def small_chapter(self, server):
        out = self.fresh()
        os.makedirs(os.path.join(out, "many"))
        names = sorted(os.listdir(os.path.join(self.small, "many")))
        run([self.soq, "-q", "files", "get", "--seed", server.addr, *names, "-o",
             os.path.join(out, "many")])
        sync_path(out)
        return out

    # -- the run ------------------------------------------------------------------

    def go(self):
        a = self.args
        have = {t: shutil.which(t) is not None for t in ("ncat", "socat", "rsync", "tar")}
        for t, ok in have.items():
            if not ok:
                log(f"{t} not found: its cases are skipped")
        self.prepare()
        def new_serve(path="read-write"):
            return Server([self.soq, "-q", "files", "serve", self.src, "--listen", "127.0.0.1:0",
                           "--max-per-ip", "0", "--max-transfers", "128", "--data-path", path])
        serve = new_serve()
        # The kernel data paths (--data-path): servers that send by sendfile
        # and by splice; the splice rows receive by splice too.
        sendfile_serve, splice_serve = new_serve("sendfile"), new_serve("splice")
        splice_get = ["--data-path", "splice"]
        # The same folder over the secure channel (TLS 1.3 + passphrase): the
        # "secure channel" rows show what encryption costs.
        passfile = os.path.join(self.work, "passphrase")
        with open(os.open(passfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("bench-files passphrase\n")
        secure = Server([self.soq, "-q", "files", "serve", self.src, "--listen", "127.0.0.1:0",
                         "--max-per-ip", "0", "--passphrase-file", passfile,
                         "--state-dir", os.path.join(self.work, "server-state")])
        secure_flags = ["--passphrase-file", passfile,
                        "--state-dir", os.path.join(self.work, "client-state")]
        chapter_big = Server([sys.executable, os.path.join(ROOT, "tests/peers/repositorio.py"),
                              self.big, "0"])
        chapter_small = Server([sys.executable, os.path.join(ROOT, "tests/peers/repositorio.py"),
                                os.path.join(self.small, "many"), "0"])
        rsyncd = self.start_rsync() if have["rsync"] else None
        try:
            B, S = self.big_bytes, self.small_bytes
            # The long-running server remembers the big file's hash after the
            # first download (files/hashcache.rs): that download is made here,
            # untimed, so its rows are all "warm". The "new server" rows start
            # a server per run, which hashes the file as it sends it.
            time.sleep(2.1)  # a hash is remembered once the file is 2 s old
            for warm in (serve, sendfile_serve, splice_serve):
                shutil.rmtree(self.soquete_get(warm, ["big/big.bin"], self.shm or None))
            shutil.rmtree(self.soquete_get(secure, ["big/big.bin"], self.shm or None,
                                           secure_flags))
            big = [("soquete get (verified, durable)",
                    lambda: self.soquete_get(serve, ["big/big.bin"]), self.big_ok, [serve]),
                   ("soquete get (verified, durable), new server",
                    lambda s: self.soquete_get(s, ["big/big.bin"]), self.big_ok, [], new_serve),
                   ("soquete get (verified, durable), secure channel",
                    lambda: self.soquete_get(secure, ["big/big.bin"], extra=secure_flags),
                    self.big_ok, [secure]),
                   ("soquete get (verified, durable), server sendfile",
                    lambda: self.soquete_get(sendfile_serve, ["big/big.bin"]), self.big_ok,
                    [sendfile_serve]),
                   ("soquete get (verified, durable), splice both ends",
                    lambda: self.soquete_get(splice_serve, ["big/big.bin"], extra=splice_get),
                    self.big_ok, [splice_serve])]
            if have["ncat"]:
                big.append(("nc + sync", self.big_nc, self.big_ok, []))
            if have["socat"]:
                big.append(("socat -b 1M + sync", self.big_socat, self.big_ok, []))
            if rsyncd:
                big.append(("rsync (daemon) + sync", lambda: self.rsync(rsyncd, "big/big.bin"),
                            self.big_ok, [rsyncd]))
            if self.shm:
                big.append(("soquete get -> tmpfs (verified)",
                            lambda: self.soquete_get(serve, ["big/big.bin"], self.shm),
                            self.big_ok, [serve]))
                big.append(("soquete get -> tmpfs (verified), new server",
                            lambda s: self.soquete_get(s, ["big/big.bin"], self.shm),
                            self.big_ok, [], new_serve))
                big.append(("soquete get -> tmpfs (verified), secure channel",
                            lambda: self.soquete_get(secure, ["big/big.bin"], self.shm,
                                                     secure_flags),
                            self.big_ok, [secure]))
                big.append(("soquete get -> tmpfs (verified), server sendfile",
                            lambda: self.soquete_get(sendfile_serve, ["big/big.bin"], self.shm),
                            self.big_ok, [sendfile_serve]))
                big.append(("soquete get -> tmpfs (verified), splice both ends",
                            lambda: self.soquete_get(splice_serve, ["big/big.bin"], self.shm,
                                                     splice_get),
                            self.big_ok, [splice_serve]))
                if have["ncat"]:
                    big.append(("nc -> tmpfs", lambda: self.big_nc(self.shm, durable=False),
                                self.big_ok, []))
                big.append(("dd /dev/zero -> tmpfs (no network)", self.big_dd,
                            lambda out: out is not None, []))
            small = [("soquete get (verified, durable)",
                      lambda: self.soquete_get(serve, ["small/many"]), self.small_ok, [serve]),
                     ("soquete get (verified, durable), secure channel",
                      lambda: self.soquete_get(secure, ["small/many"], extra=secure_flags),
                      self.small_ok, [secure])]
            if have["ncat"] and have["tar"]:
                small.append(("tar | nc -> nc | tar x + sync", self.small_tar_nc, self.small_ok, []))
            if rsyncd:
                small.append(("rsync -r (daemon) + sync", lambda: self.rsync(rsyncd, "small/many"),
                              self.small_ok, [rsyncd]))
            for r in range(a.runs):
                log(f"round {r + 1} of {a.runs}")
                # Each round starts with a different tool: on this VM the first
                # big write after a pause pays for memory the host has taken
                # back, and that must not always fall on the same tool.
                for tool, body, check, servers, *start in rotated(big, r):
                    self.timed("big", tool, B, body, check, servers, *start)
                if r == 0:
                    # The chapter's 1024-byte sends: slow, so once.
                    self.timed("big", "repositorio.py + get --seed", B,
                               lambda: self.soquete_get(chapter_big, ["big.bin"], extra=["--seed"]),
                               self.big_ok, [chapter_big])
                for tool, body, check, servers in rotated(small, r):
                    self.timed("small", tool, S, body, check, servers)
                if r == 0:
                    self.timed("small", "repositorio.py, a connection per file", S,
                               lambda: self.small_chapter(chapter_small), self.small_ok,
                               [chapter_small])
            self.memory(serve)
        finally:
            for s in (serve, sendfile_serve, splice_serve, secure, chapter_big, chapter_small,
                      rsyncd):
                if s:
                    s.stop()

    def memory(self, _serve):
        """Peak RSS of a fresh server while 100 clients download at once."""
        n = 100
        mid = os.path.join(self.work, "mid")
        os.makedirs(mid)
        with open(os.path.join(mid, "mid.bin"), "wb") as w:
            w.write(os.urandom(self.args.mem_file << 20))
        serve = Server([self.soq, "-q", "files", "serve", mid, "--listen", "127.0.0.1:0",
                        "--max-per-ip", "0", "--max-transfers", str(n), "--max-clients", str(2 * n)])
        base = self.shm or self.work
        try:
            procs = [subprocess.Popen([self.soq, "-q", "files", "get", serve.addr, "mid.bin", "-o",
                                       self.fresh(base)], stdout=subprocess.DEVNULL)
                     for _ in range(n)]
            codes = [p.wait(DEADLINE) for p in procs]
            peak = serve.peak_rss_mib()
        finally:
            serve.stop()
        self.memory_result = dict(clients=n, file_mib=self.args.mem_file,
                                  completed=sum(1 for c in codes if c == 0), peak_rss_mib=peak)
        log(f"memory: {self.memory_result}")

    def table(self):
        rows = []
        groups = {}
        for r in self.results:
            groups.setdefault((r["case"], r["tool"]), []).append(r)
        for (case, tool), rs in groups.items():
            good = [r for r in rs if r["seconds"] and r["ok"]]
            if not good:
                rows.append([case, tool, str(len(rs)), "-", "-", "-", "-", "FAILED: " + (rs[0]["note"] or "wrong output")])
                continue
            sec = statistics.median(r["seconds"] for r in good)
            cpu = statistics.median(r["cpu_s"] for r in good)
            srv = [r["server_cpu_s"] for r in good if r.get("server_cpu_s") is not None]
            srv = f"{statistics.median(srv):.2f}" if srv else "-"
            nbytes = good[0]["bytes"]
            rows.append([case, tool, str(len(good)), f"{sec:.2f}", f"{nbytes / sec / 1e6:,.0f}",
                         f"{cpu:.2f}", srv,
                         "" if len(good) == len(rs) else f"{len(rs) - len(good)} failed"])
        head = ["case", "tool", "runs", "seconds", "MB/s", "cpu s", "server cpu s", "note"]
        table = [head] + rows
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        print(f"big = one {self.args.size} MiB file; small = {self.args.files:,} files of 4 KiB; "
              "median of the runs; MB = 10^6 bytes")
        for i, row in enumerate(table):
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            if i == 0:
                print("  ".join("-" * w for w in widths))
        m = getattr(self, "memory_result", None)
        if m:
            print(f"\nmemory: {m['completed']}/{m['clients']} concurrent downloads of "
                  f"{m['file_mib']} MiB; server peak RSS {m['peak_rss_mib']:.1f} MiB")
        with open(os.path.join(self.work, "results.json"), "w") as f:
            json.dump(dict(results=self.results, memory=m), f, indent=1)

    def cleanup(self):
        shutil.rmtree(self.work, ignore_errors=True)
        if self.shm:
            shutil.rmtree(self.shm, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="256 MiB, 2,000 files, one run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--size", type=int, default=1024, help="big file size in MiB")
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--mem-file", type=int, default=16, help="MiB per download in the memory case")
    p.add_argument("--dir", default=None, help="where to write (default: $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--cold", action="store_true",
                   help="no tmpfs write before each big run (see above)")
    a = p.parse_args()
    if a.quick:
        a.size, a.files, a.runs = 256, 2000, 1
    if not 1 <= a.runs <= 20:
        p.error("--runs takes 1 to 20")
    b = Bench(a, soquete_bin())
    try:
        b.go()
        b.table()
    finally:
        if not a.keep:
            b.cleanup()


if __name__ == "__main__":
    main()
