#!/usr/bin/env python3
"""ch26-front: a TEST HARNESS that serves the ClickHouse HTTP interface, as far as paver uses
it, over the ClickHouse 26.9 engine of PyPI's chdb-core (in-process, a persistent data dir).

The HTTP layer is a stand-in written here; the SQL engine is real: every statement paver
sends is parsed, planned and executed by ClickHouse 26.9 itself (MergeTree, materialized
views, Merge, RENAME, settings). No current ClickHouse server can be installed on the test
machines (Debian ships 18.16), and chdb has no server entry point of its own.

What the stand-in does, like the real server's HTTP handler:
  - GET and POST on `/`; `/ping` answers `Ok.`; GET `/` without a query answers `Ok.`
  - the query in `query=` and/or the body (`query=` + "\\n" + body, as the server
    concatenates them: an INSERT's data follows its `FORMAT`), chunked or sized bodies;
  - `database=`, `default_format=` (else TabSeparated), and every other unknown URL
    parameter is a setting of that one query (`SET name = value`, restored after it);
  - one statement per request: a second statement is a syntax error, as on the server;
  - errors: the real server's HTTP status for the exception code
    (exceptionCodeToHTTPStatus), `X-ClickHouse-Exception-Code`, and the message as body.
What it does not do: authentication (it listens on loopback only), compression,
sessions, progress headers, streaming (a body is read whole before it runs, so a client
that dies mid-body inserts nothing; the real server would insert the blocks it had parsed,
which for paver's batches, far below max_insert_block_size, is also nothing), query
cancellation. Requests run one at a time: a chdb session is one ClickHouse context.

Usage: ch26-front.py --port 8126 --data DIR [--host 127.0.0.1]
"""

import argparse
import os
import tempfile
import http.server
import re
import sys
import threading
import time
import urllib.parse

import chdb
from chdb import session as chdb_session

# URL parameters the server reads itself; every other one is a setting.
NOT_SETTINGS = {
    "query", "database", "default_format", "user", "password", "quota_key", "query_id",
    "session_id", "session_timeout", "session_check", "compress", "decompress",
    "buffer_size", "wait_end_of_query", "role", "stacktrace",
}

# exceptionCodeToHTTPStatus of the real server (src/Server/HTTP/), by error name; the
# code → name mapping comes from the engine itself (errorCodeToName).
STATUS_BY_NAME = {
    "REQUIRED_PASSWORD": 401,
    **{n: 403 for n in ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED",
                         "SET_NON_GRANTED_ROLE", "ACCESS_DENIED")},
    **{n: 400 for n in (
        "BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT",
        "CANNOT_PARSE_ESCAPE_SEQUENCE", "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE",
        "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER", "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
        "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
        "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN", "UNKNOWN_ELEMENT_IN_AST",
        "UNKNOWN_TYPE_OF_AST_NODE", "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST",
        "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH",
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE")},
    **{n: 404 for n in (
        "UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE",
        "UNKNOWN_STORAGE", "UNKNOWN_DATABASE", "UNKNOWN_SETTING",
        "UNKNOWN_DIRECTION_OF_SORTING", "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT",
        "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE")},
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "CANNOT_SCHEDULE_TASK": 503,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


class QueryError(Exception):
    """A ClickHouse exception: its code and message (`Code: N. DB::Exception: …`)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def second_statement(sql):
    """Whether the text holds a second statement after a top-level `;` (the real server
    refuses multi-statements). An INSERT's data (after `FORMAT name` or `VALUES`) is
    not SQL and is not scanned."""
    i, n = 0, len(sql)
    words = []
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n and sql[j] != c:
                j += 2 if sql[j] == "\\" else 1
            i = j + 1
        elif sql.startswith("--", i) or c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ";":
            return sql[i + 1:].strip(" \t\r\n;") != ""
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            words.append(sql[i:j].upper())
            i = j
            if words[0] == "INSERT" and words[-1] == "VALUES":
                return False
            if words[0] == "INSERT" and len(words) >= 2 and words[-2] == "FORMAT":
                return False
        else:
            i += 1
    return False


def literal(value):
    if NUMBER.match(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# `INSERT INTO db.t (a, b) FORMAT RowBinary`: a statement whose body is binary.
BINARY_INSERT = re.compile(r"\s*INSERT\s+INTO\s+([`\w.]+)\s*(?:\(([^)]*)\))?\s*FORMAT\s+(RowBinary)\s*$", re.I | re.S)


class Engine:
    """The chdb session, one query at a time."""

    def __init__(self, path):
        self.session = chdb_session.Session(path)
        self.lock = threading.Lock()
        self.names = {}
        self.version = self.query("SELECT version()", "TabSeparated").decode().strip()

    def query(self, sql, fmt):
        try:
            return self.session.query(sql, fmt).bytes()
        except Exception as e:  # chdb raises ChdbError with the server's message
            text = str(e).strip()
            m = re.match(r"Code: (\d+)\.", text)
            raise QueryError(int(m.group(1)) if m else 1001, text) from None

    def name_of(self, code):
        if code not in self.names:
            try:
                self.names[code] = self.query(
                    f"SELECT errorCodeToName({int(code)})", "TabSeparated").decode().strip()
            except QueryError:
                self.names[code] = ""
        return self.names[code]

    def run(self, sql, fmt, database, settings):
        """Run one request's statement with its database and settings; restore both."""
        with self.lock:
            applied = []
            try:
                if database:
                    self.query(f"USE `{database.replace('`', '')}`", "TabSeparated")
                for name, value in settings:
                    if not SETTING_NAME.match(name):
                        raise QueryError(115, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
                    self.query(f"SET {name} = {literal(value)}", "TabSeparated")
                    applied.append(name)
                if second_statement(sql):
                    raise QueryError(62, "Code: 62. DB::Exception: Syntax error (Multi-statements are not allowed). (SYNTAX_ERROR)")
                return self.query(sql, fmt)
            finally:
                for name in applied:
                    try:
                        self.query(f"SET {name} = DEFAULT", "TabSeparated")
                    except QueryError:
                        pass
                if database:
                    try:
                        self.query("USE default", "TabSeparated")
                    except QueryError:
                        pass


ENGINE = None
# CH26_FRONT_TRACE=1: one line per statement in the log.
TRACE = bool(__import__("os").environ.get("CH26_FRONT_TRACE"))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ch26-front"

    def log_message(self, fmt, *args):  # quiet: one line per error only
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("the body ended before its last chunk")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise ConnectionError("the body ended inside a chunk")
                parts.append(chunk)
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise ConnectionError("the body ended early")
        return body

    def send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (a killed worker): the statement ran, as on the server.
            self.close_connection = True

    def binary_insert(self, m, body, p):
        """`INSERT INTO t (cols) FORMAT RowBinary` + body, as `INSERT INTO t (cols) SELECT *
        FROM file(body, 'RowBinary', structure)`: the same insert (views, settings) for chdb."""
        table, columns, fmt = m.group(1), m.group(2), m.group(3)
        settings = [(k, v) for k, v in urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)
                    if k not in NOT_SETTINGS and not k.startswith("param_")]
        try:
            described = ENGINE.run(f"DESCRIBE TABLE {table}", "TabSeparated", p.get("database"), [])
        except QueryError as e:
            return self.error(e)
        types = {}
        for line in described.decode().splitlines():
            name, ty = line.split("\t")[:2]
            # TabSeparated escapes: a Tuple's type spans lines.
            types[name] = re.sub(r"\\(.)", lambda e: {"n": " ", "t": " "}.get(e.group(1), e.group(1)), ty)
        names = [c.strip().strip("`") for c in columns.split(",")] if columns else list(types)
        structure = ", ".join(f"`{n}` {types.get(n, 'String')}" for n in names)
        with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
            f.write(body)
        try:
            listed = ", ".join(f"`{n}`" for n in names)
            sql = (f"INSERT INTO {table} ({listed}) SELECT * FROM file({literal(f.name)}, {literal(fmt)}, "
                   f"{literal(structure)})")
            out = ENGINE.run(sql, "TabSeparated", p.get("database"), settings)
        except QueryError as e:
            return self.error(e)
        finally:
            os.unlink(f.name)
        return self.send(200, out)

    def handle_query(self, post):
        url = urllib.parse.urlsplit(self.path)
        if url.path in ("/ping", "/ping/"):
            return self.send(200, b"Ok.\n")
        if url.path != "/":
            return self.send(404, b"There is no handle " + url.path.encode() + b"\n")
        params = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        try:
            body = self.read_body() if post else b""
        except (ConnectionError, ValueError) as e:
            self.close_connection = True
            print(f"ch26-front: request dropped: {e}", file=sys.stderr)
            return None
        p = dict(params)
        query = p.get("query", "")
        binary = BINARY_INSERT.match(query) if body else None
        if binary:
            # chdb takes a statement as text: a binary body (RowBinary) goes through a file.
            return self.binary_insert(binary, body, p)
        if body:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                return self.error(QueryError(36, "Code: 36. DB::Exception: the ch26 test front passes only UTF-8 bodies to chdb. (BAD_ARGUMENTS)"))
            query = query + "\n" + text if query else text
        if not query.strip():
            if not post:
                return self.send(200, b"Ok.\n")
            return self.error(QueryError(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)"))
        fmt = p.get("default_format") or "TabSeparated"
        settings = [(k, v) for k, v in params if k not in NOT_SETTINGS and not k.startswith("param_")]
        if TRACE:
            print(f"ch26-front: {query[:300]!r} {settings}", file=sys.stderr, flush=True)
        try:
            out = ENGINE.run(query, fmt, p.get("database"), settings)
        except QueryError as e:
            return self.error(e)
        self.send(200, out, [
            ("Content-Type", "application/json; charset=UTF-8" if "JSON" in fmt else "text/tab-separated-values; charset=UTF-8"),
            ("X-ClickHouse-Server-Display-Name", "ch26-front"),
            ("X-ClickHouse-Format", fmt),
        ])
        return None

    def error(self, e):
        status = STATUS_BY_NAME.get(ENGINE.name_of(e.code), 500)
        print(f"ch26-front: {status} {e.message[:300]}", file=sys.stderr)
        self.send(status, (e.message + f" (version {ENGINE.version} (chdb-core, ch26 test front))\n").encode(), [
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("X-ClickHouse-Exception-Code", str(e.code)),
        ])

    def do_GET(self):
        self.handle_query(False)

    def do_POST(self):
        self.handle_query(True)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    global ENGINE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8126)
    ap.add_argument("--data", required=True, help="the chdb session's data dir (kept)")
    args = ap.parse_args()
    t0 = time.time()
    ENGINE = Engine(args.data)
    server = Server((args.host, args.port), Handler)
    print(f"ch26-front: ClickHouse {ENGINE.version} (chdb {chdb.__version__}) on "
          f"http://{args.host}:{args.port}, data {args.data}, ready in {time.time() - t0:.1f}s",
          file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
