#!/usr/bin/python3
# mc_pymemcache.py PORT: Debian's pymemcache (an unmodified stock client)
# drives every command it has against a server on 127.0.0.1:PORT, and gat,
# gats, verbosity and the meta commands through its raw command path.
# Prints "ok - what" or "not ok - what: why" per check; tests/e2e/mc.sh
# runs it against Debian's memcached too, to know the checks are right.
import sys
import time

from pymemcache.client.base import Client
from pymemcache import exceptions

PORT = int(sys.argv[1])
c = Client(("127.0.0.1", PORT), connect_timeout=5, timeout=5)


def check(what, got, want):
    if got == want:
        print("ok - %s" % what)
    else:
        print("not ok - %s: got %r, want %r" % (what, got, want))


def raises(what, exc, fn, *args):
    try:
        r = fn(*args)
        print("not ok - %s: no %s, returned %r" % (what, exc.__name__, r))
    except exc:
        print("ok - %s" % what)
    except Exception as e:  # noqa: BLE001 - a test reports every failure
        print("not ok - %s: %r instead of %s" % (what, e, exc.__name__))


def raw(line):
    """A raw command through pymemcache's socket; its reply lines."""
    c._connect() if c.sock is None else None
    c.sock.sendall(line)
    buf = b""
    while not buf.endswith(b"\r\n") or buf.count(b"\r\n") < raw.want:
        buf += c.sock.recv(65536)
    return buf


raw.want = 1

check("flush_all", c.flush_all(), True)
check("version", c.version()[:4], b"1.6.")
check("set", c.set("k1", "v1"), True)
check("get", c.get("k1"), b"v1")
check("get of a missing key", c.get("nokey"), None)
check("set with flags and expiry", c.set("k2", "v2", expire=100, flags=7), True)
check("set noreply", c.set("k3", "v3", noreply=True), True)
check("get_many", c.get_many(["k1", "k2", "k3", "nokey"]),
      {"k1": b"v1", "k2": b"v2", "k3": b"v3"})
check("set_many", c.set_many({"m1": "a", "m2": "b", "m3": "c"}), [])
check("get_many after set_many", c.get_many(["m1", "m2", "m3"]),
      {"m1": b"a", "m2": b"b", "m3": b"c"})
check("add of an existing key", c.add("k1", "x", noreply=False), False)
check("add of a new key", c.add("k4", "v4", noreply=False), True)
check("replace of a missing key", c.replace("nokey", "x", noreply=False), False)
check("replace", c.replace("k4", "w4", noreply=False), True)
check("append", c.append("k4", "!", noreply=False), True)
check("prepend", c.prepend("k4", "<", noreply=False), True)
check("append and prepend result", c.get("k4"), b"<w4!")
check("append to a missing key", c.append("nokey", "x", noreply=False), False)
v, cas = c.gets("k1")
check("gets", v, b"v1")
check("cas with the right value", c.cas("k1", "v1b", cas), True)
check("cas with a stale value", c.cas("k1", "v1c", cas), False)
check("cas of a missing key", c.cas("nokey", "x", 1), None)
check("gets_many", sorted(c.gets_many(["k1", "k2"]).keys()), ["k1", "k2"])
check("value after cas", c.get("k1"), b"v1b")
check("delete", c.delete("k1", noreply=False), True)
check("delete of a missing key", c.delete("k1", noreply=False), False)
check("delete_many", c.delete_many(["m1", "m2", "nokey"]), True)
check("deleted by delete_many", c.get_many(["m1", "m2", "m3"]), {"m3": b"c"})
c.set("n", "10")
check("incr", c.incr("n", 5), 15)
check("decr", c.decr("n", 20), 0)
check("incr of a missing key", c.incr("nokey", 1), None)
check("incr wraps", c.incr("n", 2**64 - 1), 2**64 - 1)
check("incr wraps to 0", c.incr("n", 1), 0)
c.set("s", "abc")
raises("incr of a non-number", exceptions.MemcacheClientError, c.incr, "s", 1)
check("touch", c.touch("k2", 100, noreply=False), True)
check("touch of a missing key", c.touch("nokey", 100, noreply=False), False)
check("stats pid", b"pid" in c.stats(), True)
check("stats curr_items", c.stats()[b"curr_items"] >= 5, True)
check("stats settings", b"maxbytes" in c.stats("settings"), True)
check("stats items", any(k.startswith(b"items:") for k in c.stats("items")), True)
check("stats slabs", b"active_slabs" in c.stats("slabs"), True)
raises("a key with a space", exceptions.MemcacheIllegalInputError, c.set, "a b", "x")
raises("a key of 251 bytes", exceptions.MemcacheIllegalInputError, c.set, "k" * 251, "x")
check("a key of 250 bytes", c.set("k" * 250, "x", noreply=False), True)
raises("a value over 1 MiB", exceptions.MemcacheServerError, c.set, "big", b"x" * (1 << 20 | 1),
       0, False)
check("the connection works after a refused value", c.get("k2"), b"v2")
check("a 1000000-byte value", c.set("big", b"y" * 1000000, noreply=False), True)
check("reading it back", c.get("big"), b"y" * 1000000)
raises("shutdown is not enabled", exceptions.MemcacheUnknownCommandError, c.shutdown)
c.set("e", "x", expire=1)
time.sleep(2.5)
check("expired after its time", c.get("e"), None)
c.set("e", "x", expire=-1)
check("negative expiry: gone at once", c.get("e"), None)
# What pymemcache has no method for, over its own socket.
check("gat", raw(b"gat 100 k2\r\n"), b"VALUE k2 7 2\r\nv2\r\nEND\r\n")
check("gats", raw(b"gats 100 nokey\r\n"), b"END\r\n")
check("verbosity", raw(b"verbosity 1\r\n"), b"OK\r\n")
check("ms", raw(b"ms mk 2 T0 F3\r\nhi\r\n"), b"HD\r\n")
check("mg", raw(b"mg mk v f k\r\n"), b"VA 2 f3 kmk\r\nhi\r\n")
check("mg miss", raw(b"mg nokey v\r\n"), b"EN\r\n")
check("md", raw(b"md mk\r\n"), b"HD\r\n")
check("mn", raw(b"mn\r\n"), b"MN\r\n")
check("flush_all noreply", c.flush_all(noreply=True), True)
check("empty after flush_all", c.get_many(["k2", "k4", "big"]), {})
# memcached flushes what is older than one second before the time given,
# at its next clock tick: 3 s leaves a second for the check in between.
check("flush_all with a delay", c.flush_all(delay=3, noreply=False), True)
c.set("late", "x")
check("still there before the delay", c.get("late"), b"x")
time.sleep(3.5)
check("gone after the delay", c.get("late"), None)
c.quit()
check("quit, then a new connection", c.get("nokey"), None)
