"""Real HTTP receivers on 127.0.0.1 for push tests: each records every request and answers
from a script (fail, stall or recover on cue)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Receiver:
    """An HTTP server on 127.0.0.1 that records each request and answers from a script: the
    `answers` (status, body[, headers]) in turn, the last one repeated; `delay` seconds before
    answering. Each recorded request has its `method`; GETs are answered the same way."""

    def __init__(self, answers=((200, {"errcode": 0, "errmsg": "ok"}),), delay: float = 0.0):
        self.answers = list(answers)
        self.delay = delay
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                outer.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "raw_query": parts.query,
                        "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                        "headers": dict(self.headers),
                        "json": json.loads(body or b"null"),
                        "at": time.time(),
                    }
                )
                if outer.delay:
                    time.sleep(outer.delay)
                k = min(len(outer.requests), len(outer.answers)) - 1
                status, answer, *more = outer.answers[k]
                data = (
                    json.dumps(answer).encode() if not isinstance(answer, str) else answer.encode()
                )
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (more[0] if more else {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting (the timeout test)

            do_GET = do_POST  # a redirect followed as a GET must be seen too

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
