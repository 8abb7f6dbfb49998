"""retrain on a real model (SmolLM2-135M-Instruct) against its baselines: TRL, a plain training loop, raw `generate`,
1 process.

The setting: LoRA r=16 on all linear layers, the json tool format, the built-in `calculator`, 16 rollouts a
step (4 prompts x 4 generations), at most 3 turns of 48 tokens and 192 completion tokens, `--threads` torch threads,
everything offline, retrain's defaults otherwise (`cpu_memory: fast`: the setting of the whole retrain worker process,
so its plain loop's too). Each figure is measured against its baseline in the same run, rounds alternating (A B, B A):

- `mem_vs_trl`, `step_vs_trl`: a retrain `GRPOTrainer` step (built as `retrain.run` builds it: `TrainingConfig` ->
  `grpo_config`, `SmolAgentEnv.from_config`, `RewardCalculator.from_config`, the LoRA config handed to the trainer)
  against plain `trl.GRPOTrainer` on the same model, batch and prompt ids (the environment's rendering, as text),
  single-turn, with TRL's own defaults (gradient checkpointing on) and `min_new_tokens = max_completion_length = ` the
  mean completion length (model + tool tokens) of the preceding retrain round, so both train on as many tokens. Each
  configuration runs in its OWN subprocess. Peak memory: at each step's begin the process resets the kernel's
  high-water mark (`'5'` written to `/proc/self/clear_refs`), at its end it reads `VmHWM` from `/proc/self/status`:
  the peak resident set of that step alone (on CUDA, `torch.cuda.max_memory_allocated` is reset and read likewise and
  is the figure used); the peak reached by the end of TRL's `_prepare_inputs` (rollouts, rewards, scoring) is printed
  beside it, to tell a rollout peak from a training one. Step 1 is warm-up; the figures are over steps 2..`--steps`
  (step time: the median; memory: the highest step peak). With `--steps 1` the single step is used for both.
- `train_vs_plain`: the training phase of the retrain step -- step time minus the time in TRL's `_prepare_inputs`
  (rollouts, rewards, scoring), i.e. the loss forward + backward + optimizer step -- as trained (model) tokens per
  second, against a plain LoRA loop (forward with `logits_to_keep`, log-softmax, masked mean NLL, backward, AdamW step)
  over the very batches the retrain steps trained on (same micro-batch, same padding), run in the same process right
  after training, the first batch once as warm-up.
- `rollout_vs_generate`: model tokens per second of `SmolAgentEnv.rollout` (16 episodes, sampled at temperature 1.0) on
  a 2-turn task (call `calculator`, read the observation, `final_answer`) against raw batched `model.generate` on the
  same batch, each row starting from its prompt followed by its episode's tool tokens (so decoding ends at the same
  context length) and producing exactly the median number of model tokens per episode (`min_new_tokens =
  max_new_tokens`). A 135 M model makes no tool call unaided, so the LoRA adapters are first fitted for a few steps
  (supervised, assistant tokens only) on rendered demonstrations of the task and merged; the result is cached under
  retrain's cache directory. The script prints how many episodes really took the tool path and their lengths.
  Repetitions alternate env / generate; medians.
- `speedup_2proc`: `retrain run` on a YAML of the same setting for `--steps` steps, on 1 process against
  `torchrun --nproc_per_node 2` (gloo), one torch thread per process, same global batch (per-device 16 / 8); step
  times from each run's `metrics.jsonl` (`step_seconds`), the first step dropped. Rounds alternate (1, 2 / 2, 1).
- `--turns 2,5,9` (off by default): the rollout comparison at 2, 5 and 9 turns (prompts that ask for
  1, 4 and 8 calculator calls, then the answer), each as env tokens/s / raw decoding at the same context lengths.

    python benchmarks/real_model.py [--model retrain/smollm2-135m-instruct] [--threads 2] [--steps 3] [--rounds 2]
                                    [--skip trl,train,rollout,2proc] [--turns 2,5,9]
Quick check (a few minutes): --steps 2 --rounds 1 --skip 2proc
Last line: RESULT mem_vs_trl=<r> step_vs_trl=<r> train_vs_plain=<r> rollout_vs_generate=<r> speedup_2proc=<r>
(`nan` for a skipped figure; with --turns a `RESULT_TURNS turns2=<r> turns5=<r> turns9=<r>` line comes just before).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
DEFAULT_MODEL = "retrain/smollm2-135m-instruct"
FIGURES = ("trl", "train", "rollout", "2proc")
GENERATIONS, BATCH = 4, 16  # 4 prompts x 4 rollouts = 16 rollouts a step
MAX_TURNS, PER_TURN, MAX_COMPLETION = 3, 48, 192
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0}  # all linear layers: retrain's `lora_config` default
LR = 2e-4
SFT_STEPS, SFT_BATCH, SFT_MICRO, SFT_LR = 24, 8, 4, 5e-4
DATA = ROOT / "configs" / "data" / "calculator_train.jsonl"


# ---------------------------------------------------------------- shared pieces

def run_config(model: str, steps: int, per_device: int, threads: int, out: str, name: str) -> dict:
    "The `TrainingConfig` of the benchmark's setting."
    return {"model": {"name_or_path": model, "peft_config": LORA},
            "algorithm": {"hyperparameters": {
                "learning_rate": LR, "lr_scheduler_type": "constant", "num_generations": GENERATIONS,
                "per_device_train_batch_size": per_device, "max_steps": steps, "max_completion_length": MAX_COMPLETION,
                "logging_steps": 1, "save_steps": 100000}},
            "environment": {"tools": ["calculator"], "tool_call_format": "json", "max_turns": MAX_TURNS,
                            "max_tokens_per_turn": PER_TURN, "sampling": {"temperature": 1.0}},
            "prompt_source": {"type": "file", "path": str(DATA)},
            "reward_setup": {"rollout_reward_configs": {"numeric_match": {"weight": 1.0}},
                             "step_reward_configs": {"tool_call_valid": {"weight": 0.2}}},
            "seed": 0, "experiment_name": name, "output_dir": out, "num_threads": threads}


def resolve_model(name: str) -> str:
    "A local model directory for `--model`: an existing directory, or an embedded model built into retrain's cache."
    if Path(name).is_dir():
        if not (Path(name) / "config.json").is_file(): raise SystemExit(f"--model {name}: the folder holds no "
                                                                        "config.json")
        return name
    from retrain.models import EMBEDDED_MODELS, resolve_model_path
    if name in EMBEDDED_MODELS:
        print(f"model: building/loading the embedded model {name} (first use builds it into the cache)", flush=True)
        return resolve_model_path(name)
    hint = (" (this retrain does not embed SmolLM2 yet)" if name == DEFAULT_MODEL else "")
    raise SystemExit(f"--model {name}: neither a local model directory nor an embedded model of this retrain{hint}; "
                     f"embedded: {sorted(EMBEDDED_MODELS)}. Point --model at a saved SmolLM2-135M-Instruct directory "
                     "(safetensors, tokenizer, chat template), e.g. --model /path/to/smollm2")


def read_hwm_kb(field: str = "VmHWM") -> int:
    "A memory figure of this process from /proc/self/status, in kB (VmHWM: the peak RSS, VmRSS: the current one)."
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"): return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_hwm() -> bool:
    "Reset the kernel's peak-RSS mark of this process (False where the kernel refuses)."
    try:
        with open("/proc/self/clear_refs", "w") as f: f.write("5")
        return True
    except OSError: return False


def step_probe(trainer, record: dict):
    "Per step: seconds, peak RSS (and CUDA peak), seconds in `_prepare_inputs`, the trained batch (kept on CPU)."
    import torch
    from transformers import TrainerCallback
    record.update(step_s=[], peak_mb=[], prepare_peak_mb=[], start_mb=[], cuda_peak_mb=[], prepare_s=[], tokens=[],
                  batches=[], completion_len=[])
    cuda = torch.cuda.is_available()
    state = {"prep": 0.0, "t0": 0.0}
    inner = trainer._prepare_inputs

    def prepare(batch):
        t0 = time.perf_counter()
        out = inner(batch)
        state["prep"] += time.perf_counter() - t0
        record["prepare_peak_mb"].append(read_hwm_kb() / 1024)  # the step's peak so far: rollouts, rewards, scoring
        mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]
        record["tokens"].append(int(mask.sum()))
        record["completion_len"].append(float(out["completion_mask"].sum(1).float().mean()))
        record["batches"].append({k: out[k].detach().cpu()
                                  for k in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask")}
                                 | {"trained_mask": mask.detach().cpu()})
        return out

    trainer._prepare_inputs = prepare

    class Probe(TrainerCallback):
        def on_step_begin(self, args, st, control, **kw):
            record["hwm_reset"] = reset_hwm()
            record["start_mb"].append(read_hwm_kb("VmRSS") / 1024)  # what the allocator still holds from before
            if cuda: torch.cuda.reset_peak_memory_stats()
            state["prep"], state["t0"] = 0.0, time.perf_counter()

        def on_step_end(self, args, st, control, **kw):
            record["step_s"].append(time.perf_counter() - state["t0"])
            record["prepare_s"].append(state["prep"])
            record["peak_mb"].append(read_hwm_kb() / 1024)
            if cuda: record["cuda_peak_mb"].append(torch.cuda.max_memory_allocated() / 2**20)

    trainer.add_callback(Probe())


def plain_loop(model, batches: list[dict], lr: float) -> list[float]:
    "Seconds of a plain LoRA forward + backward + AdamW step on each batch (the first one run once before, untimed)."
    import torch
    dev = next(model.parameters()).device
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()

    def one(b):
        p_ids, c_ids = b["prompt_ids"].to(dev), b["completion_ids"].to(dev)
        ids = torch.cat([p_ids, c_ids], 1)
        att = torch.cat([b["prompt_mask"], b["completion_mask"]], 1).to(dev)
        logits = model(input_ids=ids, attention_mask=att, logits_to_keep=c_ids.shape[1] + 1).logits[:, :-1]
        lp = logits.float().log_softmax(-1).gather(-1, c_ids[..., None]).squeeze(-1)
        mask = b["trained_mask"].to(dev).float()
        loss = -(lp * mask).sum() / mask.sum().clamp(min=1)
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)

    one(batches[0])
    times = []
    for b in batches:
        t0 = time.perf_counter(); one(b); times.append(time.perf_counter() - t0)
    return times


# ---------------------------------------------------------------- workers (each in its own process)

def worker_retrain(a) -> dict:
    import torch
    from retrain.calculator import RewardCalculator
    from retrain.config_models import TrainingConfig
    from retrain.env import SmolAgentEnv
    from retrain.models import load_model, load_tokenizer, lora_config
    from retrain.prompts import load_rows
    from retrain.trainer import GRPOTrainer, grpo_config
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainingConfig.from_dict(run_config(a.model, a.steps, BATCH, a.threads, out, "bench"))
        torch.manual_seed(0)
        tok = load_tokenizer(cfg.model)
        # as `retrain.run`: TRL applies the adapters
        model = load_model(cfg.model.model_copy(update={"peft_config": None}))
        args = grpo_config(cfg, out, n_params=model.num_parameters())  # as `retrain.run`: checkpointing by size
        env_cfg = cfg.environment.model_copy(update={"max_total_tokens": args.max_completion_length})
        env = SmolAgentEnv.from_config(env_cfg, tok)
        trainer = GRPOTrainer(model, env, RewardCalculator.from_config(cfg.reward_setup),
                              load_rows(cfg.prompt_source), args,
                              processing_class=tok, peft_config=lora_config(cfg.model.peft_config))
        rec: dict = {}
        step_probe(trainer, rec)
        trainer.train()
        timed = slice(1, None) if a.steps > 1 else slice(0, None)
        if "train" in a.figures:
            rec["plain_s"] = plain_loop(trainer.model, rec["batches"][timed], LR)
        rec["checkpointing"] = bool(getattr(args, "activation_checkpointing", args.gradient_checkpointing))
    rec.pop("batches")
    return rec


def worker_trl(a) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PrinterCallback
    from trl import GRPOConfig, GRPOTrainer as TRLGRPOTrainer
    from retrain.env import SmolAgentEnv
    from retrain.models import load_tokenizer, lora_config
    from retrain.config_models import ModelConfig
    torch.set_num_threads(a.threads)
    tok = load_tokenizer(ModelConfig(name_or_path=a.model))
    # only for its rendering of the prompt
    env = SmolAgentEnv(tok, ["calculator"], tool_call_format="json", max_turns=1)
    rows = [json.loads(x) for x in DATA.read_text().splitlines()[:256]]
    texts = [tok.decode(env.renderer.prompt_ids([{"role": "system", "content": env.system_prompt},
                                                  {"role": "user", "content": r["prompt"]}])) for r in rows]
    rng = random.Random(0)

    def noise(completions, **kw): return [rng.random() for _ in completions]

    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(output_dir=out, per_device_train_batch_size=BATCH,
                          num_generations=GENERATIONS, max_steps=a.steps,
                          max_completion_length=a.length, generation_kwargs={"min_new_tokens": a.length},
                          learning_rate=LR, lr_scheduler_type="constant", temperature=1.0, logging_steps=1,
                          save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
                          use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported())
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
        trainer = TRLGRPOTrainer(model, reward_funcs=[noise], args=args,
                                 train_dataset=Dataset.from_list([{"prompt": t} for t in texts]),
                                 processing_class=tok, peft_config=lora_config(LORA))
        trainer.remove_callback(PrinterCallback)
        rec: dict = {}
        step_probe(trainer, rec)
        trainer.train()
        rec["checkpointing"] = bool(getattr(args, "activation_checkpointing", args.gradient_checkpointing))
    rec.pop("batches")
    return rec


def demo_rows(n_calls: int, rng: random.Random) -> dict:
    "A task needing `n_calls` calculator calls (one per reply), then the last result as the answer."
    exprs = [f"{rng.randint(100, 999)}*{rng.randint(10, 99)}" for _ in range(n_calls)]
    if n_calls == 1: prompt = f"What is {exprs[0]}?"
    else: prompt = ("Compute each of these with the calculator, one call per reply, in order, then give the last "
                    "result as the final answer: " + ", ".join(exprs))
    from retrain.tools import calculate
    return {"prompt": prompt, "exprs": exprs, "answer": calculate(exprs[-1])}


def action(name: str, args: dict) -> str: return "Action:\n" + json.dumps({"name": name, "arguments": args})


def sft_model(model_dir: str, threads: int, max_calls: int):
    "The model with LoRA adapters fitted on demonstrations (1 call or up to `max_calls`, then answer), merged; cached."
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    from retrain.config_models import ModelConfig
    from retrain.env import SmolAgentEnv
    from retrain.models import cache_dir, load_tokenizer, lora_config, save_atomically
    tok = load_tokenizer(ModelConfig(name_or_path=model_dir))
    real = Path(model_dir).resolve()
    key = f"{real.name}-{int((real / 'config.json').stat().st_mtime)}-json-calls{max_calls}-sft{SFT_STEPS}"
    target = cache_dir() / "benchmarks" / key

    def write(tmp: Path):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), lora_config(LORA))
        env = SmolAgentEnv(tok, ["calculator"], tool_call_format="json", max_turns=9)
        eos, rng = tok.eos_token_id, random.Random(0)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=SFT_LR)
        model.train()
        for step in range(SFT_STEPS):
            seqs, labels = [], []
            for i in range(SFT_BATCH):
                r = demo_rows(1 if i % 2 == 0 or max_calls == 1 else rng.randint(2, max_calls), rng)
                msgs = [{"role": "system", "content": env.system_prompt}, {"role": "user", "content": r["prompt"]}]
                ids = env.renderer.prompt_ids(msgs)
                lab = [-100] * len(ids)
                for e in r["exprs"]:
                    text = action("calculator", {"expression": e})
                    reply = env.renderer.encode(text) + [eos]
                    msgs.append({"role": "assistant", "content": text})
                    obs = env.renderer.env_ids_after_turn(reply, msgs,
                                                          {"role": "user", "content": "Observation:\n" + calc(e)})
                    msgs.append({"role": "user", "content": "Observation:\n" + calc(e)})
                    ids, lab = ids + reply + obs, lab + reply + [-100] * len(obs)
                reply = env.renderer.encode(action("final_answer", {"answer": r["answer"]})) + [eos]
                seqs.append(ids + reply); labels.append(lab + reply)
            # micro-batches: the full-vocabulary logits of 8 long demos are GBs
            for j in range(0, SFT_BATCH, SFT_MICRO):
                ss, ls = seqs[j:j + SFT_MICRO], labels[j:j + SFT_MICRO]
                n = max(map(len, ss))
                x = torch.tensor([[eos] * (n - len(s)) + s for s in ss])
                y = torch.tensor([[-100] * (n - len(s)) + s for s in ls])
                att = torch.tensor([[0] * (n - len(s)) + [1] * len(s) for s in ss])
                loss = model(input_ids=x, attention_mask=att, labels=y).loss
                (loss * len(ss) / SFT_BATCH).backward()
            opt.step(); opt.zero_grad()
            if step % 8 == 7 or step == SFT_STEPS - 1:
                print(f"  warm start ({max_calls} call(s) at most) step {step + 1}/{SFT_STEPS}: loss {loss.item():.4f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
        model.merge_and_unload().save_pretrained(tmp)
        tok.save_pretrained(tmp)

    cached = target.is_dir()
    torch.set_num_threads(threads)
    path = save_atomically(target, write)
    print(f"warm start: {'loaded from' if cached else 'fitted and saved to'} {path}", flush=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, tok


def calc(expr: str) -> str:
    from retrain.tools import calculate
    return calculate(expr)


def worker_rollout(a) -> dict:
    "Env tokens/s against raw decoding for each number of turns in `a.turn_list` (2: the headline figure)."
    import torch
    from retrain.env import SmolAgentEnv
    torch.set_num_threads(a.threads)
    model, tok = sft_model(a.model, a.threads, max(a.turn_list) - 1)
    rng, out = random.Random(1), {}
    for turns in a.turn_list:
        env = SmolAgentEnv(tok, ["calculator"], tool_call_format="json", max_turns=turns, max_tokens_per_turn=PER_TURN,
                           max_total_tokens=turns * (PER_TURN + 32))
        rows = [demo_rows(turns - 1, rng) for _ in range(BATCH)]
        gen_in, per_row = None, None
        times, toks, info = {"env": [], "generate": []}, {"env": [], "generate": []}, {}
        env.rollout_sync(rows[:4], model)  # warm-up
        for rep in range(a.reps):
            for kind in (("env", "generate") if rep % 2 == 0 else ("generate", "env")):
                if kind == "generate" and gen_in is None: continue  # the env's first repetition sets the lengths
                torch.manual_seed(rep)
                t0 = time.perf_counter()
                if kind == "env":
                    res = env.rollout_sync(rows, model)
                    k = sum(r.n_model_tokens for r in res)
                else:
                    with torch.no_grad():
                        model.generate(input_ids=gen_in,
                                       attention_mask=(gen_in != tok.pad_token_id).long(), do_sample=True,
                                       temperature=1.0, top_k=0, top_p=1.0,
                                       max_new_tokens=per_row, min_new_tokens=per_row,
                                       pad_token_id=tok.pad_token_id)
                    k = per_row * BATCH
                times[kind].append(time.perf_counter() - t0); toks[kind].append(k)
                if kind == "env" and gen_in is None:
                    ctx = [r.prompt_ids + [c for c, m in zip(r.completion_ids, r.env_mask) if not m] for r in res]
                    n = max(map(len, ctx))
                    gen_in = torch.tensor([[tok.pad_token_id] * (n - len(c)) + c for c in ctx])
                    per_row = max(1, round(statistics.median(r.n_model_tokens for r in res)))
                    with torch.no_grad():  # warm-up at these shapes
                        model.generate(input_ids=gen_in,
                                       attention_mask=(gen_in != tok.pad_token_id).long(), do_sample=True,
                                       max_new_tokens=2, min_new_tokens=2, pad_token_id=tok.pad_token_id)
                    info = {"tool_path": sum(r.num_tool_calls == turns - 1
                                             and r.termination.value == "final_answer" for r in res) / BATCH,
                            "mean_turns": statistics.mean(len(r.turns) for r in res),
                            "model_tokens_median": per_row, "model_tokens_max": max(r.n_model_tokens for r in res),
                            "env_tokens_mean": statistics.mean(r.n_env_tokens for r in res),
                            "prompt_tokens_mean": statistics.mean(len(r.prompt_ids) for r in res),
                            "correct": sum(r.final_answer == r.row["answer"] for r in res) / BATCH}
        rate = {m: statistics.median(k / t for k, t in zip(toks[m], times[m])) for m in times}
        out[str(turns)] = {**info, "env_tok_s": rate["env"], "generate_tok_s": rate["generate"],
                           "n": len(times["generate"])}
    return out


# ---------------------------------------------------------------- orchestration

def spawn(kind: str, a, **extra) -> dict:
    "Run one worker in a fresh process; its JSON result."
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f: res = f.name
    cmd = [sys.executable, __file__, "--worker", kind, "--model", a.model_dir, "--threads",
           str(a.threads), "--steps", str(a.steps),
           "--rounds", str(a.rounds), "--skip", ",".join(a.skip) or "none", "--result", res,
           *[x for k, v in extra.items() for x in (f"--{k}", str(v))]]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "PYTHONWARNINGS": "ignore"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=None, stderr=subprocess.PIPE, text=True)
    try:
        if r.returncode != 0: raise SystemExit(f"{kind} worker failed (exit {r.returncode}):\n{r.stderr[-4000:]}")
        return json.loads(Path(res).read_text())
    finally: Path(res).unlink(missing_ok=True)


def cli_run(nproc: int, a, out: Path, name: str) -> list[float]:
    "Step times (first dropped) of `retrain run` on `nproc` processes, one torch thread each, global batch 16."
    from retrain.config_models import TrainingConfig
    cfg = TrainingConfig.from_dict(run_config(a.model_dir, a.steps, BATCH // nproc, 1, str(out), name))
    yml = out / f"{name}.yaml"
    cfg.to_yaml(yml)
    launcher = [sys.executable, "-m", "retrain"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m", "retrain"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([*launcher, "run", str(yml)], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0: raise SystemExit(f"{nproc}-process run failed:\n{r.stderr[-3000:]}")
    lines = [json.loads(x) for x in (out / name / "metrics.jsonl").read_text().splitlines()]
    lines = [m for m in lines if m.get("step", 0) >= 1]
    return [m["step_seconds"] for m in (lines[1:] if len(lines) > 1 else lines)]


def med(xs): return statistics.median(xs) if xs else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded model name or a local model directory")
    p.add_argument("--threads", type=int, default=2, help="torch threads per process (2proc: always 1 per process)")
    p.add_argument("--steps", type=int, default=3, help="training steps per run (the first is warm-up)")
    p.add_argument("--rounds", type=int, default=2,
                   help="alternating rounds per comparison (rollouts: 3 repetitions a round)")
    p.add_argument("--skip", default="", help=f"comma-separated figures to skip: {','.join(FIGURES)}")
    p.add_argument("--turns", default="", help="point 5: also compare the rollout at these turn counts, e.g. 2,5,9")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, default=MAX_COMPLETION, help=argparse.SUPPRESS)
    p.add_argument("--turn-list", default="2", help=argparse.SUPPRESS)
    a = p.parse_args()
    a.skip = [s for s in a.skip.split(",") if s and s != "none"]
    if bad := set(a.skip) - set(FIGURES): raise SystemExit(f"--skip {','.join(sorted(bad))}: the figures are "
                                                           f"{','.join(FIGURES)}")
    a.figures = [f for f in FIGURES if f not in a.skip]
    if a.worker:
        a.turn_list, a.reps = [int(x) for x in a.turn_list.split(",")], 3 * a.rounds
        fn = {"retrain": worker_retrain, "trl": worker_trl, "rollout": worker_rollout}[a.worker]
        Path(a.result).write_text(json.dumps(fn(a)))
        return

    t_start = time.perf_counter()
    a.model_dir = resolve_model(a.model)
    print(f"model {a.model} ({a.model_dir}); {a.threads} torch threads; {BATCH} rollouts a step (G={GENERATIONS}), "
          f"json format, calculator, <= {MAX_TURNS} turns x {PER_TURN} tokens, {MAX_COMPLETION} completion tokens; "
          f"{a.steps} steps x {a.rounds} rounds; load at start {os.getloadavg()[0]:.2f}", flush=True)
    res = {"mem_vs_trl": float("nan"), "step_vs_trl": float("nan"), "train_vs_plain": float("nan"),
           "rollout_vs_generate": float("nan"), "speedup_2proc": float("nan")}
    timed = slice(1, None) if a.steps > 1 else slice(0, None)

    if "trl" in a.figures or "train" in a.figures:
        rt: dict[str, list] = {"step": [], "peak": [], "train_tok_s": [], "plain_tok_s": [], "prep": [], "len": []}
        trl: dict[str, list] = {"step": [], "peak": [], "prep": []}
        length = MAX_COMPLETION
        for r in range(a.rounds):
            order = ("retrain", "trl") if r % 2 == 0 else ("trl", "retrain")
            for kind in order:
                if kind == "trl" and "trl" not in a.figures: continue
                rec = spawn(kind, a, length=length)
                cuda = bool(rec["cuda_peak_mb"])
                steps, peaks = rec["step_s"][timed], (rec["cuda_peak_mb"] if cuda else rec["peak_mb"])[timed]
                prep, toks = rec["prepare_s"][timed], rec["tokens"][timed]
                target = rt if kind == "retrain" else trl
                target["step"] += steps; target["peak"].append(max(peaks)); target["prep"] += prep
                if kind == "retrain":
                    length = max(1, round(statistics.mean(rec["completion_len"])))
                    rt["len"].append(length)
                    rt["train_tok_s"] += [k / (s - q) for k, s, q in zip(toks, steps, prep)]
                    rt["plain_tok_s"] += [k / t for k, t in zip(toks, rec.get("plain_s", []))]
                    if rec.get("plain_s"):
                        print(f"round {r} retrain training phase {med([s - q for s, q in zip(steps, prep)]):.1f} s a "
                              f"step, plain loop {med(rec['plain_s']):.1f} s over the same batches", flush=True)
                print(f"round {r} {kind:7s}: step {med(steps):.1f} s (prepare {med(prep):.1f} s), peak "
                      f"{max(peaks):.0f} MB{' CUDA' if cuda else ' RSS'} (at step begin "
                      f"{max(rec['start_mb'][timed]):.0f} MB, by the end of prepare "
                      f"{max(rec['prepare_peak_mb'][timed]):.0f} "
                      f"MB){'' if rec.get('hwm_reset', True) else ' (whole process: clear_refs refused)'}, completion "
                      f"{statistics.mean(rec['completion_len'][timed]):.0f} tokens, {statistics.mean(toks):.0f} "
                      f"trained tokens a step, checkpointing {rec['checkpointing']}, load {os.getloadavg()[0]:.2f}",
                      flush=True)
        if "trl" in a.figures:
            res["mem_vs_trl"] = max(rt["peak"]) / max(trl["peak"])
            res["step_vs_trl"] = med(rt["step"]) / med(trl["step"])
            print(f"retrain: median step {med(rt['step']):.1f} s, peak {max(rt['peak']):.0f} MB; TRL (single-turn, "
                  f"{rt['len']} completion tokens): median step {med(trl['step']):.1f} s, "
                  f"peak {max(trl['peak']):.0f} MB")
        if "train" in a.figures:
            res["train_vs_plain"] = med(rt["train_tok_s"]) / med(rt["plain_tok_s"])
            print(f"training phase: retrain {med(rt['train_tok_s']):.0f} trained tokens/s, plain loop over the same "
                  f"batches {med(rt['plain_tok_s']):.0f} tokens/s")

    turn_list = sorted({2, *(int(x) for x in a.turns.split(",") if x)})
    if "rollout" in a.figures or a.turns:
        rec = spawn("rollout", a, **{"turn-list": ",".join(map(str, turn_list))})
        for t, v in rec.items():
            print(f"rollout {t} turns: env {v['env_tok_s']:.0f} model tokens/s, generate {v['generate_tok_s']:.0f} "
                  f"(ratio {v['env_tok_s'] / v['generate_tok_s']:.2f}, {v['n']} reps); tool path {v['tool_path']:.2f}, "
                  f"mean turns {v['mean_turns']:.2f}, correct {v['correct']:.2f}; model tokens per episode median "
                  f"{v['model_tokens_median']} (max {v['model_tokens_max']}), env tokens {v['env_tokens_mean']:.0f}, "
                  f"prompt {v['prompt_tokens_mean']:.0f}", flush=True)
        if "rollout" in a.figures: res["rollout_vs_generate"] = rec["2"]["env_tok_s"] / rec["2"]["generate_tok_s"]

    if "2proc" in a.figures:
        times: dict[int, list] = {1: [], 2: []}
        tmp = Path(tempfile.mkdtemp(prefix="retrain-real-2proc-"))
        try:
            for r in range(a.rounds):
                for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                    t = cli_run(n, a, tmp, f"r{r}-p{n}")
                    times[n] += t
                    print(f"round {r}, {n} process(es): median step {med(t):.1f} s over {len(t)} steps, load "
                          f"{os.getloadavg()[0]:.2f}",
                          flush=True)
        finally: shutil.rmtree(tmp, ignore_errors=True)
        res["speedup_2proc"] = med(times[1]) / med(times[2])

    print(f"total {time.perf_counter() - t_start:.0f} s, load at end {os.getloadavg()[0]:.2f}")
    if a.turns:
        print("RESULT_TURNS " + " ".join(f"turns{t}={rec[str(t)]['env_tok_s'] / rec[str(t)]['generate_tok_s']:.3f}"
                                         for t in turn_list))
    print("RESULT " + " ".join(f"{k}={v:.3f}" for k, v in res.items()))


if __name__ == "__main__":
    main()
