"""A stand-in vLLM server: the HTTP endpoints TRL's `VLLMClient` uses, serving a local model with retrain's own sampler.

It answers health, `/v1/models`, world size, server info, `/v1/completions` with token-id prompts (returning the
sampled ids and their processed log-probs, as `vllm serve --logprobs-mode processed_logprobs` does), the weight
update endpoints and `/reset_prefix_cache`. Weights travel over NCCL in real vLLM; here `/update_weights` takes
them in the request body (`tensors`: base64 float32), which is what `HTTPWeightsClient` sends. Every request is
counted and generation requests are kept, so tests can check what the trainer asked for.

    python tests/vllm_standin.py --model retrain/tiny-calculator-agent --port 8011
"""
from __future__ import annotations

import argparse
import base64
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import numpy as np
import torch

from retrain.config_models import SamplingConfig
from retrain.generation import HFGenerator
from trl.generation.vllm_client import VLLMClient


class StandInServer:
    "Serves `model` over vLLM's HTTP endpoints on `port` (0: any free port), in a background thread."
    def __init__(self, model, tokenizer, name: str = "standin", host: str = "127.0.0.1", port: int = 0):
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.gen = HFGenerator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
        self.counts: Counter = Counter()
        self.requests: list[dict] = []  # every /v1/completions body
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.base_url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self): self.thread.start(); return self
    def __exit__(self, *exc): self.httpd.shutdown(); self.httpd.server_close()

    def info(self) -> dict:
        return {"vllm_config": {"model_config": {"logprobs_mode": "processed_logprobs", "model": self.name},
                                "weight_transfer_config": None}}

    def completions(self, body: dict) -> dict:
        prompts = body.get("prompt")
        if not (isinstance(prompts, list) and prompts and all(isinstance(p, list) for p in prompts)):
            raise ValueError("the stand-in serves token-id prompts only (prompt: list[list[int]])")
        if body.get("min_p", 0.0) not in (0, 0.0, None): raise ValueError("min_p is not supported by the stand-in")
        n, top_k = int(body.get("n", 1)), body.get("top_k", 0)
        sampling = SamplingConfig(temperature=body.get("temperature", 1.0), top_p=body.get("top_p", 1.0),
                                  top_k=None if top_k in (None, 0, -1) else top_k,
                                  repetition_penalty=body.get("repetition_penalty", 1.0))
        stop = set(body.get("stop_token_ids") or [])
        stop |= {self.tokenizer.eos_token_id} if not body.get("ignore_eos") else set()
        rows = [p for p in prompts for _ in range(n)]  # prompt-major, as vLLM returns choices
        with self.lock:
            self.requests.append(body)
            outs = self.gen.complete(self.model, rows, [int(body.get("max_tokens", 16))] * len(rows), sampling,
                                     greedy=sampling.temperature == 0, stop_ids=stop)
        want_lp = body.get("logprobs") is not None
        choices = [{"index": i, "prompt_token_ids": p, "token_ids": o.ids,
                    "finish_reason": "stop" if o.ids and o.ids[-1] in stop else "length",
                    "logprobs": {"tokens": [f"token_id:{t}" for t in o.ids], "token_logprobs": o.logprobs,
                                 "top_logprobs": [None] * len(o.ids)} if want_lp else None}
                   for i, (p, o) in enumerate(zip(rows, outs))]
        return {"id": "cmpl-standin", "object": "text_completion", "model": self.name, "choices": choices}

    def update_weights(self, body: dict) -> dict:
        info, tensors = body["update_info"], body.get("tensors")
        if tensors is None:
            raise ValueError("the stand-in takes weights in the request body ('tensors'), not over NCCL")
        state = {}
        for name, shape, data in zip(info["names"], info["shapes"], tensors):
            arr = np.frombuffer(base64.b64decode(data), dtype=np.float32).reshape(shape)
            state[name] = torch.from_numpy(arr.copy())
        with self.lock:
            missing = set(state) - dict(self.model.named_parameters()).keys()
            if missing: raise ValueError(f"unknown parameters: {sorted(missing)[:3]}")
            with torch.no_grad():
                for name, p in self.model.named_parameters():
                    if name in state: p.copy_(state[name].to(p.dtype))
        return {"updated": len(state)}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args): pass

            def _send(self, code: int, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = urlparse(self.path).path
                server.counts[path] += 1
                routes = {"/health": lambda: {}, "/v1/models": lambda: {"data": [{"id": server.name}]},
                          "/get_world_size": lambda: {"world_size": 1}, "/server_info": server.info,
                          "/stats": lambda: dict(server.counts)}
                if path not in routes: return self._send(404, {"error": f"no route {path}"})
                self._send(200, routes[path]())

            def do_POST(self):
                path = urlparse(self.path).path
                server.counts[path] += 1
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                routes = {"/v1/completions": server.completions, "/update_weights": server.update_weights,
                          "/reset_prefix_cache": lambda b: {"success": True},
                          "/start_weight_update": lambda b: {}, "/finish_weight_update": lambda b: {},
                          "/init_weight_transfer_engine": lambda b: {}}
                if path not in routes: return self._send(404, {"error": f"no route {path}"})
                try: self._send(200, routes[path](body))
                except (ValueError, KeyError, TypeError) as e: self._send(400, {"error": str(e)})

        return Handler


class HTTPWeightsClient(VLLMClient):
    """TRL's `VLLMClient` for the stand-in: its own generation, prefix-cache and weight-update requests, built without
    the vLLM import check (vLLM is not installed here), and with the weights sent in the HTTP body instead of NCCL."""
    def __init__(self, base_url: str, connection_timeout: float = 10.0):
        import requests
        self.session = requests.Session()
        self.base_url, self.host, self.group_port = base_url, urlparse(base_url).hostname, 51216
        self.communicator, self._updating_weights = None, False
        self.check_server(connection_timeout)
        self.model = self._get(f"{self.base_url}/v1/models")["data"][0]["id"]

    def update_named_params(self, metadata, named_params):
        names, dtypes, shapes = (list(f) for f in zip(*metadata))
        tensors = [base64.b64encode(t.detach().float().cpu().contiguous().numpy().tobytes()).decode()
                   for _, t in named_params]
        if not self._updating_weights: self._start_weight_update()
        self._post(f"{self.base_url}/update_weights",
                   json={"update_info": {"names": names, "dtype_names": dtypes, "shapes": shapes}, "tensors": tensors})
        if not self._updating_weights: self._finish_weight_update()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="retrain/tiny-calculator-agent")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8011)
    a = p.parse_args(argv)
    from retrain.config_models import ModelConfig
    from retrain.models import load_model, load_tokenizer
    import retrain.runner  # noqa: F401  (registers the embedded models)
    cfg = ModelConfig(name_or_path=a.model)
    with StandInServer(load_model(cfg), load_tokenizer(cfg), name=a.model, host=a.host, port=a.port) as s:
        print(f"serving {a.model} at {s.base_url}", flush=True)
        s.thread.join()


if __name__ == "__main__":
    main()
