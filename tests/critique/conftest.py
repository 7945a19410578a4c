"""A local OpenAI-compatible chat server on 127.0.0.1 that can fail before it answers."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeChatServer:
    def __init__(self):
        self.fail_first = 0  # answer this many requests with 503 first
        self.fail_status = 503
        # Faults to play, one per request, before answering normally: "slow" (answers after
        # slow_s), "drop" (cuts the response off midway), "429", "500", "malformed" (200, not JSON).
        self.faults: list[str] = []
        self.slow_s = 6.0
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
        # What GET /v1/models lists: (id, root) per served model, as vLLM reports them.
        self.models = [("m", "/models/m"), ("served-critic", "/models/served-critic")]
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with server.lock:
                    server.auth_headers.append(self.headers.get("Authorization", ""))
                    listing = {"object": "list", "data": [
                        {"id": name, "object": "model", "created": int(time.time()), "owned_by": "vllm",
                         "root": root}
                        for name, root in server.models
                    ]}
                data = json.dumps(listing).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.auth_headers.append(self.headers.get("Authorization", ""))
                    failing = server.fail_first > 0
                    server.fail_first -= failing
                    fault = server.faults.pop(0) if server.faults and not failing else None
                text = body["messages"][0]["content"]
                if "TOO-LONG" in text:  # vLLM's answer to a prompt over the context
                    self.reply(400, b'{"object": "error", "message": "This model\'s maximum context length '
                                    b'is 64 '
                               b'tokens. However, you requested 900 tokens (852 in the messages, 48 in the '
                               b'completion).", "type": "BadRequestError", "code": 400}')
                    return
                if failing or fault in ("429", "500"):
                    status = server.fail_status if failing else int(fault)
                    self.reply(status, b"overloaded", {"Retry-After": "0"})
                    return
                if fault == "malformed":
                    self.reply(200, b"<html>502 Bad Gateway</html>")
                    return
                if fault == "drop":
                    self.send_response(200)
                    self.send_header("Content-Length", "4096")
                    self.end_headers()
                    self.wfile.write(b'{"choices": [{"mess')
                    self.close_connection = True
                    return
                if fault == "slow":
                    time.sleep(server.slow_s)
                completion = (text.split("[Response]\n")[1].split("\n\n[Critique]")[0] if "[Response]"
                              in text else text)
                payload = {
                    "choices": [{"message": {"role": "assistant", "content": f"Critique: {completion} looks "
                                                                             "right."}}],
                    "usage": {"prompt_tokens": len(text.split()), "completion_tokens": 4},
                }
                try:
                    self.reply(200, json.dumps(payload).encode())
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow answer
                    pass

            def reply(self, status, data, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_chat_server():
    server = FakeChatServer()
    yield server
    server.close()
