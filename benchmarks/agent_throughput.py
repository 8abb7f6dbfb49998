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
episodes put several times more prompt tokens through the model per sampled token than `SmolAgentEnv`'s. The last
line is machine-readable:
`RESULT agent_vs_env_b32=<r> agent_default_prompt_vs_env_b32=<r> fed_agent_vs_env_b32=<r>`.

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

from retrain.agents import AgentEnv  # noqa: E402
from retrain.env import SmolAgentEnv  # noqa: E402
from retrain.examples.agents import multiply  # noqa: E402
from retrain.testing import build_tiny_model  # noqa: E402

SHORT = ("You solve tasks with tools:{%- for tool in tools.values() %} {{ tool.name }}{%- endfor %}. "
         "Reply with one JSON tool call.")


def short_agent(model, tools=(), max_steps=2):
    "The benchmark's ToolCallingAgent: `multiply`, 2 steps, a system prompt as short as SmolAgentEnv's."
    t = yaml.safe_load(importlib.resources.files("smolagents.prompts").joinpath("toolcalling_agent.yaml").read_text())
    t["system_prompt"] = SHORT
    return ToolCallingAgent(tools=[multiply], model=model, max_steps=max_steps, prompt_templates=t)


def default_agent(model, tools=(), max_steps=2):
    "The same agent with smolagents' default system prompt."
    return ToolCallingAgent(tools=[multiply], model=model, max_steps=max_steps)


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
    envs = {"env": SmolAgentEnv(tok, [multiply], max_turns=3, max_tokens_per_turn=32, draft_tokens=0),
            "agent": AgentEnv(tok, short_agent, max_tokens_per_turn=32),
            "agent_default_prompt": AgentEnv(tok, default_agent, max_tokens_per_turn=32)}
    for env in envs.values(): timed(env, rows[:4], model)  # warm-up
    got = {k: [] for k in envs}
    for _ in range(a.reps):
        for k, env in envs.items(): got[k].append(timed(env, rows, model))
    med = {k: statistics.median(x for x, _, _ in v) for k, v in got.items()}
    fed = {k: statistics.median(f for _, _, f in v) for k, v in got.items()}
    for k, v in got.items():
        print(f"{k:>22}: {med[k]:8.0f} model tokens/s, {fed[k]:8.0f} tokens fed/s "
              f"(median of {a.reps}; {statistics.median(n for _, n, _ in v):.0f} model tokens a batch)")
    fr = envs["agent"].last_front
    print(f"agent front: {fr.forwards} forwards for {fr.rows_fed} row-steps (last batch)")
    print(f"RESULT agent_vs_env_b{a.batch}={med['agent'] / med['env']:.3f} "
          f"agent_default_prompt_vs_env_b{a.batch}={med['agent_default_prompt'] / med['env']:.3f} "
          f"fed_agent_vs_env_b{a.batch}={fed['agent'] / fed['env']:.3f}")


if __name__ == "__main__":
    main()
