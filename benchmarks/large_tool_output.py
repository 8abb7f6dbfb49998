"""Rollout time with a tool that returns 5 MB per call, against the same tool returning a short result.

A scripted policy makes every episode call the tool once and then answer (2 turns); only the tool's output
differs: 1 character ("short"), 4 KB ("full": cut to `max_observation_tokens`, so the model reads as many
observation tokens as with the large one) and 5 MB ("large"). Observations are cut by characters in the tool's
thread and only a short prefix is tokenized, so the large output should cost about what the full one does. The
tool builds its output once, so what is timed is retrain's handling of it. Rounds alternate; the first is warm-up.

    python benchmarks/large_tool_output.py [--rows 32] [--rounds 4] [--mb 5] [--threads 1]
Last line: RESULT large_tool_output=<large-output rollout time / full-observation rollout time>
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
from smolagents import Tool  # noqa: E402

from retrain.env import SmolAgentEnv  # noqa: E402
from retrain.generation import HFGenerator  # noqa: E402
from retrain.testing import ScriptedPolicy, build_tiny_tokenizer  # noqa: E402

CALL = '<tool_call>{"name": "calculator", "arguments": {"expression": "2*3"}}</tool_call><|end|>'


class Sized(Tool):
    name = "calculator"
    description = "Evaluates an arithmetic expression."
    inputs = {"expression": {"type": "string", "description": "the expression"}}
    output_type = "string"

    def __init__(self, n_bytes: int):
        super().__init__()
        # built once: what is measured is retrain's handling, not the tool's work
        self.payload = "6" + "7" * (n_bytes - 1)

    def forward(self, expression: str) -> str:
        return self.payload


def rollout_seconds(tok, n_bytes: int, rows: int) -> float:
    env = SmolAgentEnv(tok, [Sized(n_bytes)], max_turns=2, max_tokens_per_turn=48, max_observation_tokens=256,
                       generator=HFGenerator(tok.pad_token_id, share_prefill=False, drafts=False))  # ScriptedPolicy's
    pol = ScriptedPolicy(tok, [[CALL, "6<|end|>"] for _ in range(rows)])
    data = [{"prompt": f"What is 2*3? ({i})"} for i in range(rows)]
    t0 = time.perf_counter()
    out = env.rollout_sync(data, pol, greedy=True)
    took = time.perf_counter() - t0
    assert all(r.turns[0].tool_result for r in out), "every episode must have called the tool"
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--mb", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tok = build_tiny_tokenizer()
    times = {"short": [], "full": [], "large": []}
    sizes = {"short": 1, "full": 4096, "large": int(a.mb * 2**20)}
    for r in range(a.rounds + 1):
        for k, n in sizes.items():
            t = rollout_seconds(tok, n, a.rows)
            if r: times[k].append(t)
    s, f, lg = (statistics.median(times[k]) for k in ("short", "full", "large"))
    print(f"rows {a.rows}, threads {a.threads}, seconds per rollout batch (median of {a.rounds}): "
          f"1-character output {s:.3f}, 4 KB output {f:.3f}, {a.mb:g} MB output {lg:.3f} (large / short {lg / s:.2f})")
    print(f"RESULT large_tool_output={lg / f:.2f}")


if __name__ == "__main__":
    main()
