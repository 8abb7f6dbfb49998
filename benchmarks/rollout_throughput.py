"""Rollout throughput of `SmolAgentEnv` against raw batched `generate` and TRL's own tool loop.

One run, one model, one task, one batch: the tiny Llama from `retrain.models.build_tiny_model`, first taught
by a short supervised warm start on synthetic 2-turn calculator transcripts (so that it really calls the
tool, reads the result and answers: the loops do the work they do in training, and every method's batch
stops at end-of-sequence rather than at the token limit). Then, at batch 8 and batch 32, with repetitions
interleaved, the model-generated tokens per second of

- `SmolAgentEnv.rollout` (native tool calls, calculator + final_answer, temperature 1.0);
- raw batched `model.generate` producing the same number of tokens per row (min = max new tokens);
- TRL 1.16's tool loop: `GRPOTrainer(..., tools=[...])._generate(prompts)` (generate, parse, call the tool,
  re-render, generate again on prompt + completion + tool result).

The environment's batch decodes until its longest episode ends (a malformed call, its error message and a
second reply can take twice the typical length; with few rows left it drafts tokens to go faster), while the
`generate` baseline stops every row at exactly the median number of tokens; the script prints both lengths.

Medians are reported; the last line is machine-readable:
`RESULT vs_generate_b8=<r> vs_generate_b32=<r> vs_trl_b8=<r> vs_trl_b32=<r>`.

usage: python benchmarks/rollout_throughput.py [--threads 1] [--reps 25] [--sft-steps 600] [--no-cache]
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from retrain.env import SmolAgentEnv  # noqa: E402
from retrain.testing import build_tiny_model, build_tiny_tokenizer, cache_dir  # noqa: E402
from retrain.tools import CalculatorTool, calculate  # noqa: E402

CALL = '<tool_call>{"name": "calculator", "arguments": {"expression": "%s"}}</tool_call><|end|>'


def task_rows(n: int, rng: random.Random) -> list[dict]:
    "Questions 'What is a*b?' with a 3-digit a and a 2-digit b (fixed width, as the tiny model likes)."
    out = []
    for _ in range(n):
        a, b = rng.randint(100, 999), rng.randint(10, 99)
        out.append({"prompt": f"What is {a}*{b}?", "expression": f"{a}*{b}", "answer": str(a * b)})
    return out


def warm_start(model, env: SmolAgentEnv, steps: int, seed: int, batch: int = 16) -> float:
    "Supervised warm start on transcripts: call the tool, then answer with its result. Returns the last loss."
    tok, rng = env.tokenizer, random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        seqs, labels = [], []
        for r in task_rows(batch, rng):
            msgs = [{"role": "user", "content": r["prompt"]}]
            p = env.renderer.prompt_ids(msgs)
            call = tok.encode(CALL % r["expression"])
            msgs += [{"role": "assistant", "content": "", "tool_calls": [
                {"type": "function",
                 "function": {"name": "calculator", "arguments": {"expression": r["expression"]}}}]}]
            obs = env.renderer.env_ids_after_turn(call, msgs, {"role": "tool", "content": r["answer"]})
            ans = tok.encode(r["answer"] + "<|end|>")
            seqs.append(p + call + obs + ans)
            labels.append([-100] * len(p) + call + [-100] * len(obs) + ans)
        n = max(map(len, seqs))
        ids = torch.tensor([s + [tok.pad_token_id] * (n - len(s)) for s in seqs])
        lab = torch.tensor([s + [-100] * (n - len(s)) for s in labels])
        att = (torch.arange(n)[None] < torch.tensor([len(s) for s in seqs])[:, None]).long()
        loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad()
    model.eval()
    return loss.item()


def calculator(expression: str) -> str:
    """Evaluates an arithmetic expression (numbers, + - * / // % **, parentheses) and returns the result.

    Args:
        expression: The arithmetic expression, e.g. '(3+4)*2'
    """
    return calculate(expression)


def final_answer(answer: str) -> str:
    """Provides a final answer to the given problem.

    Args:
        answer: The final answer to the problem
    """
    return answer


TINY_RESPONSE_TEMPLATE = {  # how TRL's parse_response reads the tiny template's replies
    "defaults": {"role": "assistant"},
    "start_anchor": "<|assistant|>",
    "fields": {
        "tool_calls": {"open": "<tool_call>", "close_pattern": r"</tool_call>\s*", "repeats": True, "content": "json",
                       "transform": {"type": "function", "function": "{content}"}},
        "content": {"close_pattern": r"<\|end\|>\s*", "content": "text"},
    },
}


def trl_trainer(model, tok, max_completion_length: int, out_dir: str):
    "A TRL GRPOTrainer with tools, used only for its generation (`_generate`)."
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    tok.response_template = TINY_RESPONSE_TEMPLATE
    args = GRPOConfig(output_dir=out_dir, per_device_train_batch_size=8, num_generations=8, use_cpu=True, bf16=False,
                      max_completion_length=max_completion_length, temperature=1.0, report_to="none",
                      gradient_checkpointing=False, logging_steps=1000, save_strategy="no",
                      max_tool_calling_iterations=1)
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": "What is 2*3?"}]}] * 8)
    tr = GRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions), args=args,
                     train_dataset=ds, processing_class=tok, tools=[calculator, final_answer])
    tr.model.eval()
    return tr


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1: the machine is shared)")
    ap.add_argument("--reps", type=int, default=25, help="repetitions per method and batch size")
    ap.add_argument("--sft-steps", type=int, default=600, help="warm-start steps (batch 16); the result is cached")
    ap.add_argument("--no-cache", action="store_true", help="redo the warm start even if a cached one exists")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    logging.disable(logging.WARNING)
    torch.manual_seed(a.seed)
    t_start = time.perf_counter()

    tok = build_tiny_tokenizer()
    model, _ = build_tiny_model(tok, seed=a.seed)
    max_completion = 96  # both loops: two replies (a call, an answer) of at most 48 tokens, the tool result between
    env = SmolAgentEnv(tok, [CalculatorTool()], max_turns=2, max_tokens_per_turn=48, max_total_tokens=max_completion)
    env_plain = SmolAgentEnv(tok, [CalculatorTool()], max_turns=2, max_tokens_per_turn=48,
                             max_total_tokens=max_completion,
                             draft_tokens=0)  # for information: the same without drafts for the tail
    cached = cache_dir() / "benchmarks" / f"tiny-calculator-sft{a.sft_steps}-seed{a.seed}.pt"
    if cached.exists() and not a.no_cache:
        model.load_state_dict(torch.load(cached))
        print(f"warm start: loaded from {cached}")
    else:
        t0 = time.perf_counter()
        loss = warm_start(model, env, a.sft_steps, a.seed)
        print(f"warm start: {a.sft_steps} steps in {time.perf_counter() - t0:.1f} s, final loss {loss:.3f}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), cached)
    model.eval()

    rng = random.Random(a.seed + 1)
    check = env.rollout_sync(task_rows(64, rng), model, greedy=True)
    called = sum(r.num_tool_calls >= 1 for r in check) / len(check)
    right = sum(r.final_answer == r.row["answer"] for r in check) / len(check)
    print(f"tiny agent (greedy, 64 held-out): calls the tool {called:.2f}, correct {right:.2f}")

    with tempfile.TemporaryDirectory() as d:
        trainer = trl_trainer(model, tok, max_completion, d)
        results = {}
        for B in (8, 32):
            rows = task_rows(B, rng)
            prompts = [[{"role": "user", "content": r["prompt"]}] for r in rows]
            enc = [env.renderer.prompt_ids(p) for p in prompts]
            n = max(map(len, enc))
            gen_ids = torch.tensor([[tok.pad_token_id] * (n - len(e)) + e for e in enc])
            gen_att = (gen_ids != tok.pad_token_id).long()
            times = {"env": [], "env_no_drafts": [], "generate": [], "trl": []}
            toks = {"env": [], "env_no_drafts": [], "generate": [], "trl": []}
            longest = []  # env: model tokens of the longest episode (the batch decodes until it ends)
            per_row = None

            rep_seed = [0]  # both environment variants sample with the same seed in a repetition: a paired comparison

            def run_env():
                torch.manual_seed(rep_seed[0])
                out = env.rollout_sync(rows, model)
                return sum(r.n_model_tokens for r in out), out

            def run_env_plain():
                torch.manual_seed(rep_seed[0])
                out = env_plain.rollout_sync(rows, model)
                return sum(r.n_model_tokens for r in out), out

            def run_generate():
                with torch.no_grad():
                    out = model.generate(input_ids=gen_ids, attention_mask=gen_att, do_sample=True, temperature=1.0,
                                         top_k=0, top_p=1.0, max_new_tokens=per_row, min_new_tokens=per_row,
                                         pad_token_id=tok.pad_token_id)
                return (out.shape[1] - n) * B, None

            # what `_generate_and_score_completions` sets up per batch before calling `_generate`
            trainer._sync_tool_dicts = [{"calculator": calculator, "final_answer": final_answer} for _ in rows]
            trainer._async_tool_dicts = [{} for _ in rows]

            def run_trl():
                _, _, tool_mask, *_ = trainer._generate(prompts)
                return sum(map(sum, tool_mask)), None

            run_env(); run_trl()  # warm-up
            for rep in range(a.reps):
                rep_seed[0] = 1000 * B + rep
                for name, fn in (("env", run_env), ("env_no_drafts", run_env_plain), ("generate", run_generate),
                                 ("trl", run_trl)):
                    if name == "generate" and per_row is None:
                        per_row = max(1, round(statistics.median(toks["env"]) / B))
                        fn()  # warm-up
                    t0 = time.perf_counter()
                    k, out = fn()
                    times[name].append(time.perf_counter() - t0)
                    toks[name].append(k)
                    if name == "env": longest.append(max(r.n_model_tokens for r in out))
                    if name == "env" and rep == 0:
                        two = sum(len(r.turns) == 2 and r.num_tool_calls == 1 for r in out) / B
                        print(f"B={B}: env episodes with exactly one tool call then an answer: {two:.2f}")
            rate = {m: statistics.median(k / t for k, t in zip(toks[m], times[m])) for m in times}
            best = {m: max(k / t for k, t in zip(toks[m], times[m])) for m in times}
            results[B] = rate
            print(f"B={B}: best of {a.reps} tokens/s env {best['env']:.0f}, generate {best['generate']:.0f}, trl "
                  f"{best['trl']:.0f} (ratios of bests: vs generate {best['env'] / best['generate']:.2f}, vs trl "
                  f"{best['env'] / best['trl']:.2f})")
            print(f"B={B}: longest episode env {statistics.median(longest):.0f} tokens median, {max(longest)} max "
                  f"(sampled replies vary), generate: every row exactly {per_row} tokens")
            print(f"B={B}: model tokens/s (median of {a.reps}) env {rate['env']:.0f}, generate {rate['generate']:.0f}, "
                  f"trl {rate['trl']:.0f}; tokens per run env {statistics.median(toks['env']):.0f}, "
                  f"generate {B * per_row}, trl {statistics.median(toks['trl']):.0f}; "
                  f"median seconds env {statistics.median(times['env']):.3f}, generate "
                  f"{statistics.median(times['generate']):.3f}, trl {statistics.median(times['trl']):.3f}")
            paired = statistics.median(a / b for a, b in zip(times["env_no_drafts"], times["env"]))
            print(f"B={B}: the environment without drafts for the tail: {rate['env_no_drafts']:.0f} tokens/s; "
                  f"with drafts, same seeds, a rollout is x{paired:.2f} faster (median of {a.reps} pairs)")
    print(f"torch threads {torch.get_num_threads()}, total {time.perf_counter() - t_start:.0f} s")
    r = {f"vs_{m}_b{B}": results[B]["env"] / results[B][m] for m in ("generate", "trl") for B in (8, 32)}
    print("RESULT " + " ".join(f"{k}={r[k]:.2f}"
                               for k in ("vs_generate_b8", "vs_generate_b32", "vs_trl_b8", "vs_trl_b32")))


if __name__ == "__main__":
    main()
