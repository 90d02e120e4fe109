#!/usr/bin/env python3
"""fakeagent.py IP:PORT KEYFILE: an agent that holds the cluster key and
answers the front end's proof, then sends what no agent should: one kind
of hostile frame per connection (the front end dials again after each).
Prints one line per connection it served; exits after the last kind.
Used by tests/e2e/hosts.sh (the front end must drop the link, stay up,
and keep the host out of the facility)."""
import hmac
import os
import socket
import struct
import sys

from khlink import L_CHALLENGE, L_PROOF, L_PROVEN, L_HELLO, L_WELCOME, L_OUT, L_EXIT, L_STATS, frame, mac, recv_frame, s


def welcome(nodes=b"\0\0\0\0", blobs=b"\0\0\0\0", name=b"h2"):
    return frame(L_WELCOME, 0, s(name) + nodes + blobs)


KINDS = [
    ("a frame longer than any", struct.pack("<III", 0x7FFFFFFF, L_OUT, 0)),
    ("a frame of no known type", frame(250, 0, b"x")),
    ("a welcome claiming 2^31 nodes", welcome(nodes=struct.pack("<I", 0x80000000))),
    ("a welcome that stops short", frame(L_WELCOME, 0, s(b"h2") + struct.pack("<I", 5))),
    ("a welcome with a name that is no name", welcome(name=b"../\0etc")),
    ("output for a rank beyond the facility", welcome() + frame(L_OUT, 99999, b"\0\0\0\0hi")),
    ("stats for 1000 interfaces", welcome() + frame(L_STATS, 0, b"\0" * 36 + struct.pack("<I", 1000))),
    ("an exit before anything was booted, then garbage", welcome() + frame(L_EXIT, 0, b"\1\0\0\0") + b"\xff" * 64),
]


def main():
    ip, port = sys.argv[1].rsplit(":", 1)
    key = bytes.fromhex(open(sys.argv[2]).read().strip())
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, int(port)))
    ls.listen(4)
    ls.settimeout(20)
    for what, bad in KINDS:
        c, _ = ls.accept()
        c.settimeout(5)
        nonce = os.urandom(32)
        c.sendall(frame(L_CHALLENGE, 0, nonce))
        t, p = recv_frame(c)
        if t != L_PROOF or len(p) != 64 or not hmac.compare_digest(p[:32], mac(key, "front", nonce)):
            print("fakeagent: no proof from the front end", flush=True)
            return 1
        c.sendall(frame(L_PROVEN, 0, mac(key, "agent", p[32:])))
        t, p = recv_frame(c)
        if t != L_HELLO:
            print("fakeagent: no hello", flush=True)
            return 1
        c.sendall(bad)
        # the front end must close: wait for its end
        try:
            while c.recv(4096):
                pass
            print("fakeagent: %s: closed by the front end" % what, flush=True)
        except socket.timeout:
            print("fakeagent: %s: NOT closed" % what, flush=True)
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
