"""`torchrun --nproc_per_node 2 -m retrain run configs/quickstart.yaml` as a user runs it (rollout and step rewards):
one run directory written by the main process, every rank's rollouts in it, evaluation split over the ranks."""
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_torchrun_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONWARNINGS": "ignore", "TRL_EXPERIMENTAL_SILENCE": "1"}
    sets = ["algorithm.hyperparameters.max_steps=3", f"output_dir={tmp_path}", "experiment_name=mp", "num_threads=1"]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "retrain", "run", "configs/quickstart.yaml", *[a for s in sets for a in ("--set", s)]],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    run_dir = tmp_path / "mp"
    metrics = _lines(run_dir / "metrics.jsonl")
    # step 0: the held-out evaluation before training (every_n_steps)
    assert [m["step"] for m in metrics] == [0, 1, 2, 3]
    rollouts = _lines(run_dir / "rollouts.jsonl")
    per_step = Counter(x["step"] for x in rollouts)
    assert per_step == {1: 128, 2: 128, 3: 128}  # 2 ranks x 64 rollouts per step
    assert all(sorted(x["index"] for x in rollouts if x["step"] == s) == list(range(128)) for s in (1, 2, 3))
    assert all(x["group"] == x["index"] // 8 for x in rollouts)
    assert len({(x["group"], x["row"]["prompt"]) for x in rollouts if x["step"] == 1}) == 16  # one prompt per group
    for m in metrics[1:]:  # the reward-hacking signals are over both ranks' rollouts, grouped across them
        mine = [x for x in rollouts if x["step"] == m["step"]]
        groups = [[x["total_reward"] for x in mine if x["group"] == g] for g in range(16)]
        assert abs(m["signals/success_rate"] - sum(x["rewards"]["numeric_match"] >= 1 for x in mine) / 128) < 1e-6, m
        assert abs(m["signals/turns/mean"] - sum(len(x["turns"]) for x in mine) / 128) < 1e-6, m
        assert abs(m["signals/zero_variance_groups"] - sum(max(g) - min(g) <= 1e-9 for g in groups) / 16) < 1e-6, m
    results = json.loads((run_dir / "results.json").read_text())
    assert results["global_step"] == 3 and results["world_size"] == 2
    for key in ("eval_before", "eval_after"):  # 256 held-out rows, split 128 + 128, each evaluated once
        assert results[key]["n"] == 256 and results[key]["per_rank"] == [128, 128], results[key]
    assert metrics[0]["eval/success_rate"] == results["eval_before"]["success_rate"]
    assert not any(k.startswith("eval/") for m in metrics[1:] for k in m)  # every 10 steps: none in 3
    assert r.stdout.count("run directory:") == 1 and r.stdout.count("held-out success") == 1  # one summary
    assert len(list(tmp_path.glob("mp/results.json"))) == 1 and (run_dir / "report.html").exists()


def _kill_tree(p):
    "SIGKILL a launcher and every process it started (torchrun's workers outlive their launcher otherwise)."
    import signal
    import psutil
    procs = [psutil.Process(p.pid)] + psutil.Process(p.pid).children(recursive=True)
    for q in procs: q.send_signal(signal.SIGKILL)
    p.wait()
    psutil.wait_procs(procs, timeout=30)


def test_two_processes_killed_then_resumed(tmp_path, monkeypatch):
    """kill -9 of the whole two-process run after step 2 is logged, then `--resume`: steps 1..5 exactly once, and the
    held-out evaluation every 2 steps (rows split over the ranks) exactly at steps 2 and 4, with the figures of one
    process."""
    import time
    import yaml
    total, per_device = 5, 4
    cfg = {"model": {"name_or_path": "retrain/tiny-random"},
           "algorithm": {"hyperparameters": {"max_steps": total,
                                             "per_device_train_batch_size": per_device, "num_generations": 4,
                                             "max_completion_length": 24, "save_steps": 1, "learning_rate": 1e-3}},
           "environment": {"tools": ["calculator"], "max_turns": 2, "max_tokens_per_turn": 8},
           "prompt_source": {"type": "list",
                             "prompts": [{"prompt": f"What is {a}*7?", "answer": str(7 * a)} for a in range(100, 108)]},
           "reward_setup": {"rollout_reward_configs": {"numeric_match": {},
                                                       "length_penalty": {"weight": 0.5, "params": {"budget": 3}}},
                            "step_reward_configs": {"tool_call_valid": {"weight": 0.2}}},
           "evaluation": {"prompt_source": {"type": "list",
                                            "prompts": [{"prompt": f"What is {a}*9?", "answer": str(9 * a)}
                                                                        for a in range(200, 203)]},
                          "every_n_steps": 2, "before": False},
           "output_dir": str(tmp_path / "runs"), "experiment_name": "kill", "num_threads": 1, "seed": 3}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONWARNINGS": "ignore", "TRL_EXPERIMENTAL_SILENCE": "1", "RETRAIN_CACHE": str(tmp_path / "cache")}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
              "retrain", "run", str(path)]
    metrics = tmp_path / "runs" / "kill" / "metrics.jsonl"
    p = subprocess.Popen(launch, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2: break
        time.sleep(0.02)
    assert p.poll() is None, "the run finished before it could be killed"
    _kill_tree(p)
    r = subprocess.run(launch + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    assert [m["step"] for m in _lines(metrics)] == list(range(1, total + 1))
    rollouts = _lines(metrics.parent / "rollouts.jsonl")
    for s in range(1, total + 1):
        assert sorted(x["index"] for x in rollouts if x["step"] == s) == list(range(2 * per_device))
    results = json.loads((metrics.parent / "results.json").read_text())
    assert results["global_step"] == total and results["eval_after"]["per_rank"] == [2, 1]
    lines = _lines(metrics)
    assert [m["step"] for m in lines if "eval/success_rate" in m] == [2, 4]
    # the step-4 figures, gathered from both ranks, are those of one process evaluating the step-4 checkpoint
    from retrain.evaluation import evaluate_sync, heldout_metrics
    monkeypatch.setenv("RETRAIN_CACHE", str(tmp_path / "cache"))
    ckpt = metrics.parent / "checkpoints" / "checkpoint-4"
    one = heldout_metrics(next(iter(evaluate_sync(path, str(ckpt), output_dir=tmp_path / "ev")["models"].values())))
    step4 = {k: v for k, v in lines[3].items() if k.startswith("eval/")}
    assert sorted(step4) == sorted(one) and all(abs(step4[k] - one[k]) < 1e-6 for k in one), (step4, one)
