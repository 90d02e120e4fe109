"""khlink: the frames of the link between a front end and an agent
(src/agent/link.h), for the test peers fakeagent.py and fakefront.py: a
12-byte little-endian header (length, type, rank), the key's proofs."""
import hashlib
import hmac
import struct

L_CHALLENGE, L_PROOF, L_PROVEN, L_HELLO, L_WELCOME = 1, 2, 3, 4, 5
L_BLOB, L_BOOT, L_INPUT, L_OUT, L_EXIT = 8, 10, 13, 14, 15
L_KILL, L_WIRE, L_RELEASE, L_SPAN, L_STATS = 16, 17, 18, 19, 20


def frame(t, rank, payload=b""):
    return struct.pack("<III", len(payload), t, rank) + payload


def u32(*v):
    return struct.pack("<" + "I" * len(v), *v)


def s(b):
    return u32(len(b)) + b


def mac(key, who, nonce):
    """crypto_auth (HMAC-SHA512-256) over who, NUL-padded to 16, and nonce."""
    msg = who.encode().ljust(16, b"\0") + nonce
    return hmac.new(key, msg, hashlib.sha512).digest()[:32]


def recv_frame(c):
    """(type, payload) of the next frame, or (None, None) at the end."""
    h = b""
    while len(h) < 12:
        d = c.recv(12 - len(h))
        if not d:
            return None, None
        h += d
    n, t, _ = struct.unpack("<III", h)
    p = b""
    while len(p) < n:
        d = c.recv(n - len(p))
        if not d:
            return None, None
        p += d
    return t, p
