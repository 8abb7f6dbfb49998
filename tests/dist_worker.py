"""Run by `tests/test_distributed.py` under `torchrun --nproc_per_node 2`: each rank checks the collectives retrain
relies on and writes what it saw to `<out>/rank<r>.json`.

- objects gathered, scattered and reduced across ranks;
- turn-level advantages of fixed rollouts split over the ranks (a group straddling both) equal the one-process ones;
- a rollout over a model sharded with FSDP2 (gloo, CPU) where the ranks' episodes have very different lengths:
  every rank makes the same number of forward calls, and the run ends;
- the vLLM server generator: rank 0 alone talks to a stand-in server, both ranks get their own turns back, even
  a rank with no request.
"""
import json
import math
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)
dist.init_process_group("gloo", timeout=timedelta(seconds=120))

from retrain import distributed as D  # noqa: E402
from retrain.advantages import rollout_rewards, token_advantages  # noqa: E402
from retrain.config_models import SamplingConfig  # noqa: E402
from retrain.env import SmolAgentEnv  # noqa: E402
from retrain.generation import VLLMServerGenerator  # noqa: E402
from retrain.testing import build_tiny_model  # noqa: E402
from retrain.types import ActionKind, ProcessedTrajectory, RawRolloutData, Turn  # noqa: E402

r, w = D.rank(), D.world_size()
out: dict = {"rank": r, "world": w}

# objects
out["all_gather"] = D.all_gather_objects({"r": r})
out["gather"] = D.gather_objects([r] * (r + 1))
out["scatter"] = D.scatter_objects([f"to{i}" for i in range(w)] if r == 0 else None)
out["broadcast"] = D.broadcast_object("hello" if r == 0 else None)
out["any"] = [D.any_rank(r == 1), D.any_rank(False)]
out["sums"] = D.sum_over_ranks({"a": r + 1.0, "b": 2.0})


# advantages: 12 fixed rollouts, groups of 4; ranks hold 6 each, so group 1 straddles the two ranks
def scored(i: int) -> ProcessedTrajectory:
    raw = RawRolloutData(prompt_ids=[1], row={"prompt": f"q{i // 4}"})
    for k in range(1 + i % 3):
        n = 1 + (i + k) % 2
        t = Turn(index=k, token_ids=[5] * n, logprobs=[-0.5] * n, action=ActionKind.tool_call,
                 completion_start=len(raw.completion_ids))
        raw.turns.append(t)
        raw.append(t.token_ids, True, t.logprobs)
        raw.append([9], False)
    steps = [float((i * 7 + k * 3) % 5) for k in range(len(raw.turns))]
    return ProcessedTrajectory(raw=raw, total_reward=math.nan,
                               rewards={"outcome": float(i % 4 == 1) + 0.1 * (i % 3), "step": math.nan},
                               weights={"outcome": 1.0, "step": 1.0}, turn_rewards=steps, step_rewards={"step": steps})


trajs = [scored(i) for i in range(12)]
mine = D.shard(trajs)
every = D.all_gather_objects(rollout_rewards(mine, keys=[t.raw.row["prompt"] for t in mine]))
offset = sum(len(x) for x in every[:r])
split = token_advantages(mine, 4, batch=[x for part in every for x in part], offset=offset, step_coef=0.5)
whole = token_advantages(trajs, 4, step_coef=0.5)
out["adv_equal"] = all(torch.equal(a, b) for a, b in zip(split.tokens, whole.tokens[offset:offset + len(mine)]))
out["adv_rows"] = len(split.tokens)

# lock step over FSDP2: rank 0's episodes stop after 2 tokens, rank 1's run 40-token turns over 3 turns
from torch.distributed.fsdp import fully_shard  # noqa: E402

model, tok = build_tiny_model()
for layer in model.model.layers: fully_shard(layer)
fully_shard(model)
forwards = [0]
model.register_forward_pre_hook(lambda *a: forwards.__setitem__(0, forwards[0] + 1))
env = SmolAgentEnv(tok, ["calculator"], max_turns=1 if r == 0 else 3, max_tokens_per_turn=2 if r == 0 else 40,
                   sampling=SamplingConfig(temperature=1.0))
lockstep = D.LockStep.when_sharded(model, tok.pad_token_id)
out["sharded"] = lockstep is not None
rows = [{"prompt": f"What is {a}*7?"} for a in range(3 if r == 0 else 5)]
torch.manual_seed(r)
rolls = env.rollout_sync(rows, model, lockstep=lockstep)
out["forwards"] = forwards[0]
out["idle_steps"] = lockstep.idle_steps if lockstep else None
out["model_tokens"] = sum(x.n_model_tokens for x in rolls)
out["checks_ok"] = all(env.check(x).ok for x in rolls)

# the vLLM server generator: only rank 0 holds a client; rank 1 asks for 2 turns, then none
from vllm_standin import HTTPWeightsClient, StandInServer  # noqa: E402

plain, _ = build_tiny_model()
server = StandInServer(plain, tok).__enter__() if r == 0 else None
try:
    gen = VLLMServerGenerator(HTTPWeightsClient(server.base_url) if r == 0 else None)
    asks = [[[1, 2, 3]], [[4, 5], [6]]][r]
    got = gen.complete(None, asks, [3] * len(asks), SamplingConfig(temperature=0.0), greedy=True)
    got2 = gen.complete(None, [[7, 8]] if r == 0 else [], [2] if r == 0 else [],
                        SamplingConfig(temperature=0.0), greedy=True)
    out["server_lens"] = [len(o.ids) for o in got] + [len(o.ids) for o in got2]
    out["server_requests"] = len(server.requests) if server else None
finally:
    D.barrier()
    if server: server.__exit__()

Path(os.environ["RETRAIN_TEST_OUT"], f"rank{r}.json").write_text(json.dumps(out))
dist.destroy_process_group()
