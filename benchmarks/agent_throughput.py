"""Model tokens/s of a smolagents `ToolCallingAgent` trained as it is (`retrain.agents.AgentEnv`) against
`SmolAgentEnv`.

Same model, same task, same batch: the untrained tiny Llama from `retrain.testing.build_tiny_model` (seed 0), 32
episodes of "What is a*b?" with a `multiply` tool, temperature 1.0, at most 32 tokens a model call and 3 model calls
an episode (`SmolAgentEnv`: native tool calls, `max_turns=3`; the agent: `max_steps=2`, then smolagents' own
final-answer call). The random model writes no valid call, so both loops run every episode to its limit: each
call samples until a stop token, a stop sequence or its 32 tokens, and gets a parse error back. The agent's system
prompt is shortened to the size of `SmolAgentEnv`'s (its factory sets `prompt_templates`), so that the figure
compares the loops and their batching rather than smolagents' 2,400-token default prompt; the script also prints
the figure with the default prompt.

`SmolAgentEnv` drives one `DecodeBatch` from its own loop; the agent runs one thread per episode, and its model
calls join a shared `DecodeBatch` through `DecodeFront` (re-rendered prompts reuse each row's cache up to where
they differ). Model tokens/s is the model-sampled tokens of the batch over its wall time; medians of `--reps`
interleaved repetitions. Tokens fed per second (prompt, observation and sampled tokens through the model: what a
forward costs) are printed beside it, because smolagents re-renders its memory for every call, so that its
episodes put several times more prompt tokens through the model per sampled token than `SmolAgentEnv`'s. 
The random model never solves the task, so every agent episode ends in smolagents' final-answer call, which renders
a different system prompt and re-feeds each row's whole memory (~700 tokens). The second measurement removes that:
`ReplayPolicy` runs the same tiny model's forwards but replaces each reply's tokens with a script (a `multiply`
call, then the final answer), so that both loops solve every episode in two model calls and sample the same 54
tokens an episode. What is left is the loops' own cost: smolagents renders each call's prompt anew ("Calling
tools: [...]" and "Observation:" around the tool result), so each agent call after the first feeds ~170 tokens a
row where `SmolAgentEnv` feeds the ~8 of the tool result; and it builds one agent per episode.

The last line is machine-readable:
`RESULT agent_vs_env_b32=<r> agent_default_prompt_vs_env_b32=<r> fed_agent_vs_env_b32=<r>
solving_agent_vs_env_b32=<r> solving_fed_agent_vs_env_b32=<r>`.

usage: python benchmarks/agent_throughput.py [--threads 1] [--reps 5] [--batch 32]
"""
from __future__ import annotations

import argparse
import importlib.resources
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
from smolagents import ToolCallingAgent  # noqa: E402
from transformers import DynamicCache  # noqa: E402

from retrain.agents import AgentEnv  # noqa: E402
from retrain.env import SmolAgentEnv  # noqa: E402
from retrain.examples.agents import multiply  # noqa: E402
from retrain.kv_cache import cache_kwarg, gather_cache_, merge_cache_, output_cache, split_cache  # noqa: E402
from retrain.testing import build_tiny_model  # noqa: E402

SHORT = ("You solve tasks with tools:{%- for tool in tools.values() %} {{ tool.name }}{%- endfor %}. "
         "Reply with one JSON tool call.")


TEMPLATES = yaml.safe_load(importlib.resources.files("smolagents.prompts").joinpath("toolcalling_agent.yaml")
                           .read_text())
TEMPLATES["system_prompt"] = SHORT  # read once: a factory that parses YAML for each episode pays ~2 ms an agent


def short_agent(model, tools=(), max_steps=2):
    "The benchmark's ToolCallingAgent: `multiply`, 2 steps, a system prompt as short as SmolAgentEnv's."
    return ToolCallingAgent(tools=[multiply], model=model, max_steps=max_steps, prompt_templates=TEMPLATES)


def default_agent(model, tools=(), max_steps=2):
    "The same agent with smolagents' default system prompt."
    return ToolCallingAgent(tools=[multiply], model=model, max_steps=max_steps)


class ReplayCache(DynamicCache):
    "A KV cache that also holds where each batch row is in its scripted replies: `[reply index, position]`."
    states: list[list]

    @classmethod
    def adopt(cls, cache: DynamicCache, states: list[list]) -> ReplayCache:
        new = cls.__new__(cls)
        new.__dict__.update(cache.__dict__)
        new.states = states
        return new

    def _plain(self) -> DynamicCache:
        "The same layers as a plain cache, for retrain's cache functions."
        view = DynamicCache.__new__(DynamicCache)
        view.__dict__ = self.__dict__
        return view

    def gather_(self, rows, cols) -> bool:
        if rows is not None: self.states = [list(self.states[i]) for i in rows.tolist()]  # a copied row is a new row
        return gather_cache_(self._plain(), rows, cols)

    def split(self, rows):  # the sub-cache's rows share their states with these rows
        sub = split_cache(self._plain(), rows)
        return None if sub is None else ReplayCache.adopt(sub, [self.states[i] for i in rows.tolist()])

    def merge_(self, sub, rows, width):
        return merge_cache_(self._plain(), sub, rows, width)


class ReplayPolicy(torch.nn.Module):
    "`model`'s forwards with each reply's tokens forced: every episode's k-th reply is `replies[k]`, then end of turn."
    def __init__(self, model, tokenizer, replies: list[str]):
        super().__init__()
        self.base, self.config = model, model.config
        self.replies = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in replies]
        gp = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True,
                                           tokenize=False)
        self.gen = tokenizer(gp, add_special_tokens=False)["input_ids"][-1]  # a reply starts after this token

    def forward(self, input_ids, attention_mask=None, cache=None, **kwargs):
        b, w = input_ids.shape
        states = cache.states if isinstance(cache, ReplayCache) else [[-1, None] for _ in range(b)]
        out = self.base(input_ids=input_ids, attention_mask=attention_mask, **{cache_kwarg(self.base): cache}, **kwargs)
        if not isinstance(output_cache(out), ReplayCache):
            key = "cache" if getattr(out, "cache", None) is not None else "past_key_values"
            out[key] = ReplayCache.adopt(output_cache(out), states)
        real, ids = _real(attention_mask, b, w).tolist(), input_ids.tolist()
        for i, s in enumerate(states):
            fed = [t for t, r in zip(ids[i], real[i]) if r]
            if not fed: continue
            if fed[-1] == self.gen: s[0], s[1] = s[0] + 1, 0  # a prompt ends: the next reply starts
            elif s[1] is not None and len(fed) == 1: s[1] += 1  # its last token fed back
            else:
                s[1] = None  # prompt tokens: the model's own logits
                continue
            reply = self.replies[min(s[0], len(self.replies) - 1)]
            out.logits[i, -1] = float("-inf")
            out.logits[i, -1, reply[min(s[1], len(reply) - 1)]] = 0.0
        return out


def _real(mask, b: int, w: int) -> torch.Tensor:
    "(B, w): which of the fed positions are real, from a 2-D 0/1 mask or a prepared 4-D (bool or additive) one."
    if mask is None: return torch.ones(b, w, dtype=torch.bool)
    if mask.dim() == 2: return mask[:, -w:].bool()
    k, j = mask.shape[-1], torch.arange(w)
    d = mask[:, 0, j, k - w + j]
    return d if d.dtype == torch.bool else d == 0


REPLIES = ['<tool_call>{"name": "multiply", "arguments": {"a": 12, "b": 34}}</tool_call>',
           '<tool_call>{"name": "final_answer", "arguments": {"answer": "408"}}</tool_call>']


def timed(env, rows, model) -> tuple[float, int, float]:
    "(model tokens per second, model tokens, tokens fed to the model per second) of one batch."
    t0 = time.perf_counter()
    ros = env.rollout_sync(rows, model)
    dt = time.perf_counter() - t0
    n = sum(r.n_model_tokens for r in ros)
    if isinstance(env, AgentEnv): fed = env.last_front.tokens_fed
    else:  # prompts share a prefill
        fed = len({tuple(r.prompt_ids) for r in ros}) * len(ros[0].prompt_ids) + sum(len(r.completion_ids) for r in ros)
    return n / dt, n, fed / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    logging.disable(logging.INFO)
    torch.manual_seed(0)
    model, tok = build_tiny_model(seed=0)
    model.eval()
    rows = [{"prompt": f"What is {100 + i}*{10 + i}?"} for i in range(a.batch)]
    env = SmolAgentEnv(tok, [multiply], max_turns=3, max_tokens_per_turn=32, draft_tokens=0)
    agent = AgentEnv(tok, short_agent, max_tokens_per_turn=32)
    replay = ReplayPolicy(model, tok, REPLIES)
    cases = {"env": (env, model), "agent": (agent, model),
             "agent_default_prompt": (AgentEnv(tok, default_agent, max_tokens_per_turn=32), model),
             "solving_env": (env, replay), "solving_agent": (agent, replay)}
    for k, (e, m) in cases.items():  # warm-up; the scripted episodes must solve the task in two calls
        ros = e.rollout_sync(rows[:4], m)
        if k.startswith("solving") and any(r.final_answer != "408" or len(r.turns) != 2 for r in ros):
            raise SystemExit(f"{k}: the scripted episodes did not end in two calls: {[r.termination for r in ros]}")
    got = {k: [] for k in cases}
    for _ in range(a.reps):
        for k, (e, m) in cases.items(): got[k].append(timed(e, rows, m))
    med = {k: statistics.median(x for x, _, _ in v) for k, v in got.items()}
    fed = {k: statistics.median(f for _, _, f in v) for k, v in got.items()}
    for k, v in got.items():
        print(f"{k:>22}: {med[k]:8.0f} model tokens/s, {fed[k]:8.0f} tokens fed/s, {fed[k] / med[k]:5.1f} fed a "
              f"model token (median of {a.reps}; {statistics.median(n for _, n, _ in v):.0f} model tokens a batch)")
    b = a.batch
    print(f"RESULT agent_vs_env_b{b}={med['agent'] / med['env']:.3f} "
          f"agent_default_prompt_vs_env_b{b}={med['agent_default_prompt'] / med['env']:.3f} "
          f"fed_agent_vs_env_b{b}={fed['agent'] / fed['env']:.3f} "
          f"solving_agent_vs_env_b{b}={med['solving_agent'] / med['solving_env']:.3f} "
          f"solving_fed_agent_vs_env_b{b}={fed['solving_agent'] / fed['solving_env']:.3f}")

if __name__ == "__main__":
    main()
