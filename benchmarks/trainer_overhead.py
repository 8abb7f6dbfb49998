"""retrain's GRPO step time against plain `trl.GRPOTrainer`, same single-turn task, model and batch.

Both trainers train the same tiny Llama (random weights, so nearly every completion runs to the length limit
and both do the same work) on the same prompt token ids (the environment's rendering, handed to TRL as text)
with the same reward (a function of the completion length), with identical GRPOConfig. Rounds alternate between
the two (A B A B ...), each a fresh trainer from the same seed; the first step of each round is warm-up and not
counted. Prints median step times and the ratio.

    python benchmarks/trainer_overhead.py [--threads 1] [--rounds 6] [--steps 8]
Last line: RESULT overhead=<retrain step time / trl step time>
"""
import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import torch  # noqa: E402
from transformers import PrinterCallback, TrainerCallback  # noqa: E402
from trl import GRPOConfig  # noqa: E402
from trl import GRPOTrainer as TRLGRPOTrainer  # noqa: E402
from datasets import Dataset  # noqa: E402

from retrain.env import SmolAgentEnv  # noqa: E402
from retrain.testing import build_tiny_model  # noqa: E402
from retrain.calculator import RewardCalculator  # noqa: E402
from retrain.rewards import register_reward  # noqa: E402
from retrain.trainer import GRPOTrainer  # noqa: E402

MAX_NEW = 32
ROWS = [{"prompt": f"What is {a}*{b}?", "answer": str(a * b)} for a, b in zip(range(101, 165), range(11, 75))]


def brevity(rollout, **kw) -> float:
    "Same signal for both trainers: fewer completion tokens is better."
    return -len(rollout.completion_ids) / MAX_NEW


def trl_brevity(prompts, completions, completion_ids, **kw):
    return [-len(ids) / MAX_NEW for ids in completion_ids]


register_reward(brevity, name="brevity")


class StepTimer(TrainerCallback):
    def __init__(self): self.times, self.t0 = [], None
    def on_step_begin(self, args, state, control, **kw): self.t0 = time.perf_counter()
    def on_step_end(self, args, state, control, **kw): self.times.append(time.perf_counter() - self.t0)


def grpo_args(out, steps, batch, gens):
    return GRPOConfig(output_dir=out, per_device_train_batch_size=batch, num_generations=gens, max_steps=steps,
                      max_completion_length=MAX_NEW, learning_rate=1e-4, logging_steps=1, save_strategy="no",
                      report_to="none", use_cpu=True, bf16=False, activation_checkpointing=False, disable_tqdm=True,
                      remove_unused_columns=False, seed=0, temperature=1.0)


def one_round(kind, steps, batch, gens):
    torch.manual_seed(0)
    model, tok = build_tiny_model(seed=0)
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = grpo_args(out, steps, batch, gens)
        if kind == "retrain":
            env = SmolAgentEnv(tok, [], max_turns=1, max_tokens_per_turn=MAX_NEW, max_total_tokens=MAX_NEW)
            t = GRPOTrainer(model, env, RewardCalculator(rollout={"brevity": {}}), ROWS, args, callbacks=[timer],
                            mask_check_every=0)
        else:
            # the very prompt the environment renders (its tool list included), as text: identical prompt ids
            env = SmolAgentEnv(tok, [], max_turns=1, max_tokens_per_turn=MAX_NEW, max_total_tokens=MAX_NEW)
            ds = Dataset.from_list([{"prompt": tok.decode(env.renderer.prompt_ids([{"role": "user",
                                                                                   "content": r["prompt"]}]))}
                                    for r in ROWS])
            t = TRLGRPOTrainer(model, reward_funcs=[trl_brevity], args=args, train_dataset=ds, processing_class=tok,
                               callbacks=[timer])
            t.remove_callback(PrinterCallback)
        t.train()
    return timer.times[1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--generations", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    times = {"retrain": [], "trl": []}
    for r in range(a.rounds):
        for kind in ("retrain", "trl") if r % 2 == 0 else ("trl", "retrain"):
            times[kind] += one_round(kind, a.steps, a.batch, a.generations)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch threads {a.threads}, batch {a.batch} (G={a.generations}), {MAX_NEW} new tokens, "
          f"{a.rounds} rounds x {a.steps - 1} timed steps each")
    for k, v in med.items(): print(f"{k:8s} median step {v * 1000:.1f} ms  (n={len(times[k])})")
    print(f"RESULT overhead={med['retrain'] / med['trl']:.3f}")


if __name__ == "__main__":
    main()
