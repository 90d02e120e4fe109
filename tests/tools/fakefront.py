#!/usr/bin/env python3
"""fakefront.py IP:PORT KEYFILE FACID FIRST COUNT: a front end that holds
the cluster key, says hello as the real one would (facility FACID, ranks
FIRST..FIRST+COUNT-1), then sends what no front end should: one kind of
hostile frame per connection.  Prints one line per kind: whether the agent
closed the link.  Used by tests/e2e/hosts.sh (the agent must drop the
link and keep serving; its nodes run on)."""
import hmac
import os
import socket
import struct
import sys

from khlink import L_CHALLENGE, L_PROOF, L_PROVEN, L_HELLO, L_WELCOME, L_BLOB, L_BOOT, L_INPUT, L_WIRE, L_RELEASE, L_SPAN, frame, mac, recv_frame, s, u32


def main():
    ip, port = sys.argv[1].rsplit(":", 1)
    key = bytes.fromhex(open(sys.argv[2]).read().strip())
    facid, first, count = int(sys.argv[3], 16), int(sys.argv[4]), int(sys.argv[5])
    outside = first + count  # a rank of another host
    kinds = [
        ("a frame of no known type", frame(250, 0)),
        ("a frame longer than any", struct.pack("<III", 0x7FFFFFFF, L_BOOT, first)),
        ("a boot of another host's node", frame(L_BOOT, outside, u32(1, 1000) + b"\0" * 12 + b"\0" * 32 + s(b"x") + s(b""))),
        ("a boot whose hostname is no name", frame(L_BOOT, first, u32(1, 1000) + b"\0" * 12 + b"\0" * 32 + s(b"a/b") + s(b""))),
        ("wiring of 1000 interfaces", frame(L_WIRE, first, u32(1000))),
        ("input whose ranks do not fill whole words", frame(L_INPUT, 0, u32(2) + b"hi" + b"\0\0")),
        ("input for another host's node", frame(L_INPUT, 0, u32(2) + b"hi" + u32(outside))),
        ("a span to something that is no address", frame(L_SPAN, 0, u32(3, 1) + s(b"not-an-ip"))),
        ("a blob chunk out of order", frame(L_BLOB, 0, b"\1" * 32 + struct.pack("<QQ", 100, 50) + b"x")),
        ("a release of another host's node", frame(L_RELEASE, outside)),
    ]
    for what, bad in kinds:
        c = socket.create_connection((ip, int(port)), timeout=5)
        t, nonce = recv_frame(c)
        if t != L_CHALLENGE:
            print("fakefront: no challenge", flush=True)
            return 1
        mine = os.urandom(32)
        c.sendall(frame(L_PROOF, 0, mac(key, "front", nonce) + mine))
        t, p = recv_frame(c)
        if t != L_PROVEN or not hmac.compare_digest(p, mac(key, "agent", mine)):
            print("fakefront: the agent's proof is wrong", flush=True)
            return 1
        c.sendall(frame(L_HELLO, 0, u32(facid, first, count)))
        t, p = recv_frame(c)
        if t != L_WELCOME:
            print("fakefront: no welcome (%s)" % t, flush=True)
            return 1
        c.sendall(bad)
        try:
            while c.recv(4096):
                pass
            print("fakefront: %s: closed by the agent" % what, flush=True)
        except socket.timeout:
            print("fakefront: %s: NOT closed" % what, flush=True)
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
