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

Several pooler processes on one port (so_reuseport): --pid takes a
comma-separated list and the RSS figures are their sum. More clients than
one process may hold sockets for: --shards S opens the clients after the
warm-up in S child processes (each within its own open-files limit); every
child keeps its clients open until all have logged in and the RSS is read,
then counts how many are still connected before closing them ("held": the
clients connected at once at the end, the warm-up's included).

Usage: idle_clients.py --port P --pid PID[,PID...] --count N [--warm W]
       [--sources K] [--shards S] [--user U] [--database D] [--query SQL]
"""

import argparse
import json
import os
import selectors
import socket
import struct
import sys
import time


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return total


def alive(conns):
    """How many of the logged-in clients are still connected."""
    n = 0
    for c in conns:
        if not c.ready:
            continue
        try:
            c.sock.setblocking(False)
            if c.sock.recv(1, socket.MSG_PEEK) == b"":
                continue
        except BlockingIOError:
            pass
        except OSError:
            continue
        n += 1
    return n


def shard(args, start, count):
    """Forks a child that opens clients start..start+count and holds them
    until told to close; returns (pid, pipe to it, pipe from it)."""
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(down_w)
        os.close(up_r)
        sel = selectors.DefaultSelector()
        conns = []
        failed = open_clients(args, start, count, sel, conns)
        first = next((c.failed for c in conns if c.failed), None)
        os.write(up_w, (json.dumps({"failed": failed, "first_error": first}) + "\n").encode())
        os.read(down_r, 1)  # wait for the word to close
        os.write(up_w, (json.dumps({"alive": alive(conns)}) + "\n").encode())
        for c in conns:
            c.sock.close()
        os._exit(0)
    os.close(down_r)
    os.close(up_w)
    return pid, down_w, os.fdopen(up_r)


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
    p.add_argument("--pid", required=True, help="PID, or several separated by commas (RSS summed)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--warm", type=int, default=100)
    p.add_argument("--sources", type=int, default=4)
    p.add_argument("--parallel", type=int, default=50)
    p.add_argument("--user", default="app")
    p.add_argument("--database", default="app")
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--query", default="", help="run this query once after login, then idle")
    p.add_argument("--shards", type=int, default=1,
                   help="child processes that open the clients after the warm-up")
    args = p.parse_args()
    pids = [int(x) for x in str(args.pid).split(",") if x]

    sel = selectors.DefaultSelector()
    conns = []
    failed = open_clients(args, 0, args.warm, sel, conns)
    time.sleep(args.settle)
    base = rss_kib(pids)
    rest = args.count - args.warm
    children = []
    first_error = None
    if args.shards > 1:
        per = -(-rest // args.shards)
        for k in range(args.shards):
            start = args.warm + k * per
            n = min(per, args.count - start)
            if n > 0:
                children.append(shard(args, start, n))
        for _, _, up in children:
            r = json.loads(up.readline() or '{"failed": 1, "first_error": "shard died"}')
            failed += r["failed"]
            first_error = first_error or r["first_error"]
    else:
        failed += open_clients(args, args.warm, rest, sel, conns)
    time.sleep(args.settle)
    full = rss_kib(pids)
    first_error = first_error or next((c.failed for c in conns if c.failed), None)
    held = alive(conns)
    for pid, down, up in children:
        os.write(down, b"x")
        held += json.loads(up.readline() or '{"alive": 0}')["alive"]
        os.waitpid(pid, 0)
    for c in conns:
        c.sock.close()
    time.sleep(args.settle * 4)  # allocators that decay (jemalloc: 10 s) get the time
    after = rss_kib(pids)
    n = args.count - args.warm
    out = {
        "count": args.count,
        "processes": len(pids),
        "held": held,
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
