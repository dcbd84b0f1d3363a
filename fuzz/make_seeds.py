#!/usr/bin/env python3
"""Writes the seed corpus fuzz/seeds/<target>/ (committed; regenerate with
`python3 fuzz/make_seeds.py`). Each seed is a valid input in the layout the
entry point in src/fuzzing/ expects: a selector byte, then the payload."""

import base64
import hashlib
import hmac
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")

# Must match src/fuzzing/auth.rs.
PASSWORD = b"pencil"
SALT = b"pgferry-fuzz-salt"
ITERATIONS = 4096
SERVER_NONCE = "pgferryFuzzServerNonce"
BINDING = b"\x42" * 32


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def startup_packet(code, body):
    return struct.pack(">II", 8 + len(body), code) + body


def params(*pairs):
    return b"".join(k + b"\0" + v + b"\0" for k, v in pairs) + b"\0"


def msg(tag, body):
    return tag + struct.pack(">I", 4 + len(body)) + body


def startup():
    psql = params((b"user", b"app"), (b"database", b"app"),
                  (b"application_name", b"psql"), (b"client_encoding", b"UTF8"))
    write("startup", "psql", startup_packet(196608, psql))
    opts = params((b"user", b"app"),
                  (b"options", b"-c search_path=a,b --statement-timeout=5s -cwork_mem=64kB"))
    write("startup", "options", startup_packet(196608, opts))
    write("startup", "minor-2", startup_packet(196610, params((b"user", b"u"))))
    write("startup", "ssl-then-startup",
          startup_packet(80877103, b"") + startup_packet(196608, psql))
    write("startup", "gssenc", startup_packet(80877104, b""))
    write("startup", "cancel", startup_packet(80877102, struct.pack(">II", 4242, 0xDEADBEEF)))
    write("startup", "protocol-2", startup_packet(2 << 16, params((b"user", b"u"))))


BACKEND = (msg(b"R", struct.pack(">I", 0))
           + msg(b"S", b"server_version\x0015.4\0")
           + msg(b"K", struct.pack(">II", 77, 1234))
           + msg(b"Z", b"I"))
ERROR = msg(b"E", b"SERROR\0VERROR\0C42P01\0Mrelation \"t\" does not exist\0\0")
EXTENDED = (msg(b"P", b"s1\0SELECT $1::int\0\0\x01\0\0\0\x17")
            + msg(b"B", b"\0s1\0\0\x00\0\x01\0\0\0\x011\0\0")
            + msg(b"D", b"P\0")
            + msg(b"E", b"\0\0\0\0\0")
            + msg(b"S", b""))


def frame():
    write("frame", "backend-login", b"\x01" + BACKEND)
    write("frame", "error-then-ready", b"\x02" + ERROR + msg(b"Z", b"E"))
    write("frame", "extended-query", b"\x03" + EXTENDED)
    write("frame", "query-partial", b"\x01" + msg(b"Q", b"SELECT 1\0") + b"Q\0\0\0\x40SEL")
    write("frame", "tiny-limit", b"\x20" + msg(b"S", b""))


def views():
    write("views", "error", b"E" + b"SERROR\0VERROR\0C57P01\0Mterminating\0\0")
    write("views", "parameter-status", b"S" + b"TimeZone\0UTC\0")
    write("views", "backend-key", b"K" + struct.pack(">II", 1, 2))
    write("views", "query", b"Q" + b"SELECT 1\0")
    write("views", "auth-sasl", b"R" + struct.pack(">I", 10) + b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0")
    write("views", "auth-md5", b"R" + struct.pack(">I", 5) + b"salt")
    write("views", "sasl-initial", b"p" + b"SCRAM-SHA-256\0" + struct.pack(">i", 8) + b"n,,n=,r=")
    write("views", "parse", b"P" + b"s1\0SELECT $1\0\0\x01\0\0\0\x17")
    write("views", "bind", b"B" + b"p1\0s1\0\0\0\0\0\0\0")
    write("views", "describe", b"D" + b"Ss1\0")
    write("views", "close", b"C" + b"Ss1\0")
    write("views", "deallocate-query", b"Q" + b"DEALLOCATE PREPARE \"My\"\"Stmt\";\0")
    write("views", "deallocate-parse", b"P" + b"\0DEALLOCATE s1\0\0\0")


def scram_keys():
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD, SALT, ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return client_key, stored_key, server_key


def b64(b):
    return base64.b64encode(b).decode()


def client_exchange(gs2, binding, client_nonce):
    client_key, stored_key, _ = scram_keys()
    bare = f"n=,r={client_nonce}"
    nonce = client_nonce + SERVER_NONCE
    server_first = f"r={nonce},s={b64(SALT)},i={ITERATIONS}"
    without_proof = f"c={b64(gs2.encode() + binding)},r={nonce}"
    auth = f"{bare},{server_first},{without_proof}".encode()
    sig = hmac.new(stored_key, auth, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    return (gs2 + bare).encode(), f"{without_proof},p={b64(proof)}".encode()


def scram():
    # mode = byte % 5, options = byte / 5 (see src/fuzzing/auth.rs).
    first, final = client_exchange("n,,", b"", "fyko+d2lbbFgONRv9qkxdawL")
    write("scram", "server-valid", bytes([0]) + first + b"\xff" + final)
    first, final = client_exchange("p=tls-server-end-point,,", BINDING, "rOprNGfwEbeRWgbNEkqO")
    write("scram", "server-valid-plus", bytes([0 + 5 * 3]) + first + b"\xff" + final)
    write("scram", "server-bad-proof", bytes([0]) + first.replace(b"p=tls-server-end-point", b"n")
          + b"\xff" + b"c=biws,r=x,p=" + b64(b"\0" * 32).encode())
    write("scram", "honest", bytes([1]) + b"fyko+d2lbbFgONRv9qkxdawL")
    write("scram", "honest-bound-server", bytes([1 + 5]) + b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")

    _, _, server_key = scram_keys()
    cn = "fuzzClientNonce"
    nonce = cn + SERVER_NONCE
    server_first = f"r={nonce},s={b64(SALT)},i={ITERATIONS}"
    auth = f"n=,r={cn},{server_first},c=biws,r={nonce}".encode()
    server_sig = hmac.new(server_key, auth, hashlib.sha256).digest()
    write("scram", "passthrough-valid", bytes([2]) + server_first.encode() + b"\xff"
          + f"v={b64(server_sig)}".encode())
    write("scram", "passthrough-error", bytes([2]) + server_first.encode() + b"\xffe=invalid-proof")

    _, stored_key, server_key = scram_keys()
    secret = f"SCRAM-SHA-256${ITERATIONS}:{b64(SALT)}${b64(stored_key)}:{b64(server_key)}"
    write("scram", "secret", bytes([3]) + secret.encode())
    userlist = ('; comment\n"app" "secret"\n"md5user" "md5' + "0" * 32 + '"\n'
                f'"scram" "{secret}"\n"quo""ted" "pa""ss" trailing\nbroken line\n')
    write("scram", "userlist", bytes([4]) + userlist.encode())


SQL = [
    "SELECT * FROM t WHERE id = $1",
    "/* pgferry:replica */ SELECT count(*) FROM orders",
    "/*pgferry : primary*/ SELECT 1",
    "BEGIN READ ONLY; SELECT 1; COMMIT",
    "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
    "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
    "EXPLAIN ANALYZE UPDATE t SET a = 1",
    "SELECT nextval('s'), lower('A'), public.safe_fn(1)",
    "SELECT $$body; with ; semicolons$$, E'esc\\'aped', U&'\\0041'",
    "SET search_path = a, b; RESET work_mem",
    "SET LOCAL statement_timeout = 5",
    "DISCARD ALL",
    "CREATE TEMP TABLE tt (a int)",
    "SELECT pg_advisory_lock(1)",
    "SELECT set_config('a.b', 'c', false)",
    "LISTEN chan; UNLISTEN *",
    "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    "COMMIT AND CHAIN",
    "SELECT 'unterminated",
]


def classify():
    for i, sql in enumerate(SQL):
        write("classify", f"sql-{i:02}", bytes([i % 32]) + sql.encode())


if __name__ == "__main__":
    startup()
    frame()
    views()
    scram()
    classify()
