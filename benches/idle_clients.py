#!/usr/bin/env python3
"""Idle-client memory probe for benches/perf.sh.

Opens COUNT client connections to a pooler (trust authentication: the
pooler must not ask for a password), each logged in and idle after its
first ReadyForQuery, spread over several 127.0.0.x source addresses so
the ephemeral ports of one address do not run out. It reads the pooler's
resident set size (VmRSS of /proc/PID/status) after WARM connections,
after all COUNT, and again a few seconds after every client has left,
and prints one line of JSON:

  {"count": N, "rss_base_kib": .., "rss_full_kib": .., "rss_after_kib": ..,
   "per_client_bytes": .., "failed": ..}

With --query SQL each client runs that simple query once after logging
in and idles after its answer (a client that has done some work, rather
than one that only logged in).

Usage: idle_clients.py --port P --pid PID --count N [--warm W]
       [--sources K] [--user U] [--database D] [--query SQL]
"""

import argparse
import json
import selectors
import socket
import struct
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def startup(user, database):
    body = struct.pack("!I", 196608)
    for k, v in (("user", user), ("database", database)):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def query(sql):
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!I", len(body) + 4) + body


class Conn:
    def __init__(self, sock, then=None):
        self.sock = sock
        self.buf = b""
        self.ready = False
        self.failed = None
        # A query to send after login (its ReadyForQuery ends the wait).
        self.then = then

    def feed(self, data):
        """Consumes backend messages; True once ReadyForQuery arrived."""
        self.buf += data
        while len(self.buf) >= 5:
            tag = self.buf[0:1]
            (n,) = struct.unpack("!I", self.buf[1:5])
            if len(self.buf) < 1 + n:
                return False
            body = self.buf[5 : 1 + n]
            self.buf = self.buf[1 + n :]
            if tag == b"R" and struct.unpack("!I", body[:4])[0] != 0:
                self.failed = "pooler asked for a password (use trust)"
                return True
            if tag == b"E":
                self.failed = body.decode(errors="replace")
                return True
            if tag == b"Z":
                if self.then is not None:
                    self.sock.sendall(self.then)
                    self.then = None
                    continue
                self.ready = True
                return True
        return False


def open_clients(args, start, count, sel, conns):
    """Opens clients start..start+count, at most --parallel logins at a time."""
    pending = 0
    i = start
    end = start + count
    failed = 0
    msg = startup(args.user, args.database)
    while i < end or pending:
        while i < end and pending < args.parallel:
            src = f"127.0.0.{1 + i % args.sources}"
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((src, 0))
            s.connect(("127.0.0.1", args.port))
            s.sendall(msg)
            s.setblocking(False)
            c = Conn(s, query(args.query) if args.query else None)
            sel.register(s, selectors.EVENT_READ, c)
            conns.append(c)
            pending += 1
            i += 1
        events = sel.select(timeout=20)
        if not events:
            # No answer for 20 s: the pooler stopped accepting (fd limit?).
            for key in list(sel.get_map().values()):
                key.data.failed = key.data.failed or "no answer within 20 s"
                sel.unregister(key.fileobj)
                failed += 1
            return failed + (end - i)
        for key, _ in events:
            c = key.data
            try:
                data = c.sock.recv(4096)
            except BlockingIOError:
                continue
            if not data:
                c.failed = c.failed or "closed during login"
            if not data or c.feed(data):
                sel.unregister(c.sock)
                pending -= 1
                if c.failed:
                    failed += 1
    return failed


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--warm", type=int, default=100)
    p.add_argument("--sources", type=int, default=4)
    p.add_argument("--parallel", type=int, default=50)
    p.add_argument("--user", default="app")
    p.add_argument("--database", default="app")
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--query", default="", help="run this query once after login, then idle")
    args = p.parse_args()

    sel = selectors.DefaultSelector()
    conns = []
    failed = open_clients(args, 0, args.warm, sel, conns)
    time.sleep(args.settle)
    base = rss_kib(args.pid)
    failed += open_clients(args, args.warm, args.count - args.warm, sel, conns)
    time.sleep(args.settle)
    full = rss_kib(args.pid)
    first_error = next((c.failed for c in conns if c.failed), None)
    for c in conns:
        c.sock.close()
    time.sleep(args.settle * 4)  # allocators that decay (jemalloc: 10 s) get the time
    after = rss_kib(args.pid)
    n = args.count - args.warm
    out = {
        "count": args.count,
        "rss_base_kib": base,
        "rss_full_kib": full,
        "rss_after_kib": after,
        "per_client_bytes": round((full - base) * 1024 / n) if n > 0 else None,
        "failed": failed,
        "first_error": first_error,
    }
    print(json.dumps(out))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
