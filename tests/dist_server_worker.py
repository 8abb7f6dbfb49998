"""Run by `tests/test_distributed.py` under `torchrun --nproc_per_node 2`: two ranks train two GRPO steps (DDP,
gloo) with the `vllm_server` backend. Rank 0 alone holds TRL's client, talking to a stand-in server; every rank's
turns go through it, and TRL's weight sync runs once per step (rank 1 takes part in its parameter walk).
Then, in the same processes, one more batch where infrastructure fails under two of rank 0's rollouts of a group
that straddles both ranks: the advantages and the token count must be those of one process leaving them out.
Each rank writes what it saw to `<out>/server-rank<r>.json`."""
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)

from retrain import distributed as D  # noqa: E402

D.ensure_group()
from vllm_standin import HTTPWeightsClient, StandInServer  # noqa: E402
from trl import GRPOConfig  # noqa: E402

from retrain.env import SmolAgentEnv  # noqa: E402
from retrain.generation import VLLMServerGenerator  # noqa: E402
from retrain.calculator import RewardCalculator  # noqa: E402
from retrain.rewards import reward  # noqa: E402
from retrain.testing import build_tiny_model  # noqa: E402
from retrain.trainer import GRPOTrainer  # noqa: E402

r = D.rank()


@reward(level="rollout")
def spread(rollout) -> float:
    "A reward that differs between rollouts of one prompt (their sampled tokens differ), so advantages are not all 0."
    return float(sum(rollout.completion_ids) % 7)


served, tok = build_tiny_model(seed=0)
server = StandInServer(served, tok).__enter__() if r == 0 else None
url = D.broadcast_object(server.base_url if server else None)

policy, _ = build_tiny_model(seed=0)
env = SmolAgentEnv(tok, ["calculator"], max_turns=2, max_tokens_per_turn=12, max_total_tokens=40)
rewards = RewardCalculator(step={"tool_call_valid": {"weight": 0.2}},
                           rollout={"length_penalty": {"params": {"budget": 4}}, "spread": {}})
rows = [{"prompt": f"What is {a}*7?", "answer": str(7 * a)} for a in range(100, 108)]
args = GRPOConfig(output_dir=os.environ["RETRAIN_TEST_OUT"] + "/ckpt", per_device_train_batch_size=8, num_generations=4,
                  max_steps=2, learning_rate=5e-3, logging_steps=1, save_strategy="no", use_cpu=True, bf16=False,
                  report_to="none", disable_tqdm=True, max_completion_length=40, remove_unused_columns=False, seed=0,
                  use_vllm=True, vllm_mode="server")
diffs = []


class Checking(GRPOTrainer):
    "Each step: how far the served log-probs are from this rank's current policy, recomputed."
    def _rollout(self, prompts, trainer=None):
        out = super()._rollout(prompts, trainer)
        model, worst = self.accelerator.unwrap_model(self.model), 0.0
        with torch.no_grad():
            for t in self._trajs:
                raw = t.raw
                logits = model(torch.tensor([raw.prompt_ids + raw.completion_ids])).logits
                lp = torch.log_softmax(logits[0, len(raw.prompt_ids) - 1:-1], -1)
                got = lp.gather(1, torch.tensor(raw.completion_ids)[:, None])[:, 0]
                m = torch.tensor(raw.env_mask, dtype=torch.bool)
                worst = max(worst, float((got[m] - torch.tensor(raw.logprobs)[m]).abs().max()))
        diffs.append((worst, all(env.check(t.raw).ok for t in self._trajs), len(self._trajs)))
        return out


try:
    trainer = Checking(policy, env, rewards, rows, args, processing_class=tok,
                       vllm_client=lambda: HTTPWeightsClient(url))
    out = {"generator": type(trainer.generator).__name__, "has_client": trainer.generator.client is not None}
    trainer.train()
    out.update(step=trainer.state.global_step, diffs=list(diffs))
    D.barrier()
    if server: out.update(counts=dict(server.counts), prompts=sum(len(b["prompt"]) for b in server.requests))
    # one group of 8 over both ranks (4 each); a backend goes down under rank 0's rollouts 1 and 2
    trainer.num_generations, trainer.step_coef, play = 8, 0.0, env.rollout_sync  # step term off: the rollout term alone
    def with_fault(rows, model, **kw):
        got = play(rows, model, **kw)
        for i in ((1, 2) if r == 0 else ()): got[i].infra_error = "tool 'calculator': ConnectionError: backend down"
        return got
    env.rollout_sync = with_fault
    trainer.model.train()
    batch = trainer._generate_and_score_completions([{"prompt": rows[0]["prompt"], "row_index": 0}] * 4)
    mask = batch["completion_mask"] * batch["tool_mask"]
    out["faults"] = {"failed": [t.failed for t in trainer._trajs], "totals": [t.total_reward for t in trainer._trajs],
                     "advantages": batch["advantages"][:, 0].tolist(),
                     "all_zero": [not a.any() for a in batch["advantages"]], "mask_rows": mask.sum(1).tolist(),
                     "num_items": batch["num_items_in_batch"].item(),
                     "infra_failed": trainer._metrics["train"]["rollouts/infra_failed"][-1]}
finally:
    if server: server.__exit__()
assert out["generator"] == VLLMServerGenerator.__name__
Path(os.environ["RETRAIN_TEST_OUT"], f"server-rank{r}.json").write_text(json.dumps(out))
