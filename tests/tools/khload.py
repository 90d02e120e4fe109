#!/usr/bin/env python3
"""khload: load and fault drivers for khd's socket (tests/e2e/load.sh,
bench/soak.sh).  Every mode prints one line of key=value figures.

  probe   --secs S                 ping and nodes, a new connection each, as
                                   another principal's tools do: latency
  churn   --clients N --secs S     N principals allocating 1..MAX nodes and
                                   releasing them: every answer all or nothing
  slow    --conns N --secs S       slowloris: N connections that send a
                                   request a byte every 2 s (--silent: none)
  readers --conns N --chan C       N read-only attachments to one channel;
                                   a marker echoed by the monitors reaches all
  khget   --secs S                 the khget program, one node, as a user
                                   runs it (then khctl release): latency
"""
import subprocess
import argparse
import os
import socket
import sys
import threading
import time


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def request(path, line, timeout=30.0):
    """One request on a new connection: (body lines, final line)."""
    s = connect(path)
    s.settimeout(timeout)
    try:
        s.sendall(line.encode() + b"\n")
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return [], "eof"
            buf += chunk
            lines = buf.split(b"\n")
            for i, l in enumerate(lines[:-1]):
                t = l.decode(errors="replace")
                if t == "ok" or t.startswith("err "):
                    return [x.decode(errors="replace")[2:] for x in lines[:i]], t
    finally:
        s.close()


def pct(xs, p):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def figures(name, lat, extra):
    ms = [x * 1000 for x in lat]
    out = [name, "n=%d" % len(ms),
           "p50_ms=%.2f" % pct(ms, 50), "p99_ms=%.2f" % pct(ms, 99),
           "max_ms=%.2f" % (max(ms) if ms else 0)]
    out += ["%s=%s" % kv for kv in extra]
    print(" ".join(out), flush=True)


def probe(a):
    lat, errs = [], 0
    end = time.monotonic() + a.secs
    while time.monotonic() < end:
        for line in ("ping", "nodes"):
            t0 = time.monotonic()
            try:
                _, last = request(a.sock, line, timeout=a.timeout)
            except OSError:
                last = "oserror"
            lat.append(time.monotonic() - t0)
            if last != "ok":
                errs += 1
        time.sleep(a.interval)
    figures("probe", lat, [("errors", errs)])
    return 0


def churn(a):
    lock = threading.Lock()
    st = {"ok": 0, "nonodes": 0, "bad": 0, "errors": 0, "lat": []}
    badlines = []
    end = time.monotonic() + a.secs

    def client(i):
        user = "%s%d" % (a.prefix, i)
        n = 0
        while time.monotonic() < end:
            n += 1
            count = 1 + (i + n) % a.max
            t0 = time.monotonic()
            try:
                body, last = request(a.sock, "get user=%s cred=%s count=%d" % (user, a.cred, count),
                                     timeout=a.timeout)
            except OSError as e:
                body, last = [], "oserror %s" % e
            dt = time.monotonic() - t0
            kind = "errors"
            if last == "ok":
                ranks = []
                chan = None
                for b in body:
                    if b.startswith("nodes: "):
                        ranks = b[7:].split()
                    if "@" in b and chan is None:
                        chan = b.split("@")[0]
                if len(ranks) != count or chan is None:
                    kind = "bad"
                    badlines.append("%s asked %d, got %r" % (user, count, body[:3]))
                else:
                    kind = "ok"
                    try:
                        _, rl = request(a.sock, "release user=%s cred=%s targets=%s" % (user, a.cred, chan),
                                        timeout=a.timeout)
                    except OSError as e:
                        rl = "oserror %s" % e
                    if rl != "ok":
                        kind = "errors"
                        badlines.append("release %s: %s" % (chan, rl))
            elif last.startswith("err nonodes"):
                kind = "nonodes"
            else:
                badlines.append("%s: %s" % (user, last))
            with lock:
                st[kind] += 1
                st["lat"].append(dt)

    th = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    for b in badlines[:5]:
        print("# " + b, file=sys.stderr)
    figures("churn", st["lat"], [("allocations", st["ok"]), ("nonodes", st["nonodes"]),
                                 ("not_all_or_nothing", st["bad"]), ("errors", st["errors"])])
    return 0 if st["bad"] == 0 and st["errors"] == 0 else 1


def slow(a):
    conns = []
    for _ in range(a.conns):
        try:
            s = connect(a.sock)
            s.setblocking(False)
            conns.append(s)
        except OSError:
            break
    opened = len(conns)
    msg = b"nodes user=slowloris-never-ends"
    closed, first, told = 0, None, 0
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < a.secs and conns:
        alive = []
        for s in conns:
            gone = False
            try:
                data = s.recv(4096)
                if not data:
                    gone = True
                elif b"not completed" in data or b"reclaimed" in data:
                    told += 1
                    gone = True
            except BlockingIOError:
                pass
            except OSError:
                gone = True
            if not gone and not a.silent:
                try:
                    s.send(msg[i % len(msg):i % len(msg) + 1])
                except BlockingIOError:
                    pass
                except OSError:
                    gone = True
            if gone:
                closed += 1
                if first is None:
                    first = time.monotonic() - t0
                s.close()
            else:
                alive.append(s)
        conns = alive
        i += 1
        time.sleep(2.0)
    for s in conns:
        s.close()
    print("slow opened=%d closed_by_khd=%d told_why=%d first_close_s=%s" %
          (opened, closed, told, "%.1f" % first if first is not None else "never"), flush=True)
    return 0


def readers(a):
    chan = a.chan[3:] if a.chan.startswith("con") else a.chan
    conns = []
    for _ in range(a.conns):
        s = connect(a.sock)
        s.sendall(("attach user=%s cred=%s chan=%s ro=1\n" % (a.user, a.cred, chan)).encode())
        conns.append(s)
    attached = 0
    for s in conns:
        s.settimeout(30)
        buf = b""
        while b"\n" not in buf:
            c = s.recv(4096)
            if not c:
                break
            buf += c
        if buf.startswith(b"ok\n"):
            attached += 1
        else:
            print("# attach: %r" % buf[:100], file=sys.stderr)
            print("readers attached=%d got_marker=0" % attached)
            return 1
    # One writer: the monitors echo the marker, every reader must see it.
    marker = "khload-marker-%d" % os.getpid()
    w = connect(a.sock)
    w.sendall(("attach user=%s cred=%s chan=%s\n" % (a.user, a.cred, chan)).encode())
    w.settimeout(30)
    w.recv(4096)
    t0 = time.monotonic()
    w.sendall(("echo %s\n" % marker).encode())
    got, lat = 0, []
    want = ("%s\n" % marker).encode()
    for s in conns:
        buf = b""
        s.settimeout(max(0.1, a.secs - (time.monotonic() - t0)))
        try:
            # the echo of the command line itself does not count: the
            # monitor's output line is the marker alone
            while not any(l.strip(b"\r") == want.strip() for l in buf.split(b"\n")):
                c = s.recv(65536)
                if not c:
                    break
                buf += c
            else:
                got += 1
                lat.append(time.monotonic() - t0)
        except OSError:
            pass
    for s in conns:
        s.close()
    w.close()
    figures("readers", lat, [("attached", attached), ("got_marker", got)])
    return 0 if got == a.conns else 1


def khget(a):
    lat, errs = [], 0
    end = time.monotonic() + a.secs
    env = dict(os.environ, KH_SOCKET=a.sock)
    while time.monotonic() < end:
        t0 = time.monotonic()
        r = subprocess.run(["khget", "-c", a.cred, a.user, "1"], env=env,
                           capture_output=True, text=True)
        lat.append(time.monotonic() - t0)
        if r.returncode != 0:
            errs += 1
            continue
        con = r.stdout.split("@")[0]
        subprocess.run(["khctl", "release", "-c", a.cred, a.user, con], env=env,
                       capture_output=True)
        time.sleep(a.interval)
    figures("khget", lat, [("errors", errs)])
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["probe", "churn", "slow", "readers", "khget"])
    p.add_argument("--sock", default=os.environ.get("KH_SOCKET"))
    p.add_argument("--secs", type=float, default=10)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--max", type=int, default=3)
    p.add_argument("--prefix", default="churn")
    p.add_argument("--cred", default="pw")
    p.add_argument("--user", default="alice")
    p.add_argument("--conns", type=int, default=100)
    p.add_argument("--silent", action="store_true")
    p.add_argument("--chan")
    a = p.parse_args()
    return {"probe": probe, "churn": churn, "slow": slow, "readers": readers,
            "khget": khget}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
