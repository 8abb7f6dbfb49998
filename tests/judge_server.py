"""A stand-in OpenAI-compatible chat endpoint for tests: `POST /v1/chat/completions` answered by a rule.

Run it in a thread (`JudgeServer(rule).start()`, a context manager) or as a process
(`python tests/judge_server.py PORT`: it prints its base URL once it listens, then scores the way `grade` does).
A rule maps the request body to a reply string, or to an int: an HTTP status to fail with.
"""
from __future__ import annotations

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Rule = Callable[[dict], "str | int"]


def grade(body: dict) -> str:
    """A judge that reads its own prompt: the right answer (the reference) scores 10, anything else 0.

    Absolute prompts get 'SCORE: n'; relative prompts (several 'Attempt k:') a JSON object of scores.
    """
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    ref = re.search(r"Reference answer:\n(.*?)\n", user)
    ref = ref.group(1).strip() if ref else None
    def score(block: str) -> int:
        ans = re.search(r"FINAL ANSWER: (.*)", block)
        return 10 if ans and ref is not None and ans.group(1).strip() == ref else 0
    if "attempts" in system.split(".")[0]:
        blocks = re.split(r"\n\nAttempt \d+:\n", user)[1:]
        return "Compared them. " + json.dumps({"scores": {str(i + 1): score(b) for i, b in enumerate(blocks)}})
    return f"Checked the answer.\nSCORE: {score(user)}"


class JudgeServer:
    "A threaded stand-in endpoint; `requests` records every request body."
    def __init__(self, rule: Rule = grade, host: str = "127.0.0.1", port: int = 0):
        self.rule, self.requests = rule, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args): pass

            def do_POST(self):
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self.send_response(404); self.end_headers(); return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                out = outer.rule(body)
                if isinstance(out, int):
                    self.send_response(out); self.end_headers(); self.wfile.write(b"stand-in failure"); return
                data = json.dumps({"id": "x", "object": "chat.completion", "model": body.get("model"),
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": out}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.base_url = f"http://{host}:{self.httpd.server_address[1]}/v1"

    def start(self) -> "JudgeServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.httpd.shutdown(); self.httpd.server_close()

    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.stop()


if __name__ == "__main__":
    server = JudgeServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(server.base_url, flush=True)
    server.httpd.serve_forever()
