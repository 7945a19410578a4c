"""A local OpenAI-compatible chat server on 127.0.0.1 that can fail before it answers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeChatServer:
    def __init__(self):
        self.fail_first = 0  # answer this many requests with 503 first
        self.fail_status = 503
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.auth_headers.append(self.headers.get("Authorization", ""))
                    failing = server.fail_first > 0
                    server.fail_first -= failing
                if failing:
                    self.send_response(server.fail_status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b"overloaded")
                    return
                text = body["messages"][0]["content"]
                completion = text.split("[Response]\n")[1].split("\n\n[Critique]")[0] if "[Response]" in text else text
                payload = {
                    "choices": [{"message": {"role": "assistant", "content": f"Critique: {completion} looks right."}}],
                    "usage": {"prompt_tokens": len(text.split()), "completion_tokens": 4},
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
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
