"""A full disk as a user meets it: `retrain run` on a small real filesystem (a 6 MB tmpfs) that fills while a
checkpoint is written, then while the lock is taken; each time one line, exit status 2, the last complete
checkpoint intact; once space is freed, `--resume` finishes the run."""
import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from retrain.rundir import check_checkpoint, complete_checkpoints

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4


def _can_mount_here(request) -> bool:
    """True when this process may mount a tmpfs (it is root, perhaps of a namespace of its own). Otherwise the test
    runs again as root of its own user and mount namespace (`unshare -rm`, no privilege needed) and False is
    returned."""
    if os.geteuid() == 0: return True
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"],
                                                         capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root or unprivileged user namespaces (unshare -rm)")
    r = subprocess.run(["unshare", "-rm", sys.executable, "-m", "pytest", "-q", "-p",
                        "no:cacheprovider", request.node.nodeid],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    return False


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try: yield path
    finally: subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path):
    "Write `path` until the filesystem is full."
    with open(path, "wb", buffering=0) as f:
        try:
            while True: f.write(b"\0" * 65536)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    with contextlib.suppress(OSError):  # the last partial block
        with open(path, "ab", buffering=0) as f:
            while True: f.write(b"\0" * 4096)


def _config(tmp_path: Path, out: Path) -> Path:
    cfg = {
        "model": {"name_or_path": "retrain/tiny-random"},
        "algorithm": {"hyperparameters": {"max_steps": STEPS, "per_device_train_batch_size": 8, "num_generations": 4,
                                          "max_completion_length": 24, "save_steps": 1, "learning_rate": 1e-3}},
        "environment": {"tools": ["calculator"], "max_turns": 2, "max_tokens_per_turn": 8},
        "prompt_source": {"type": "list",
                          "prompts": [{"prompt": f"What is {a}*7?", "answer": str(7 * a)} for a in range(100, 104)]},
        "reward_setup": {"rollout_reward_configs": {"numeric_match": {}}},
        "output_dir": str(out), "experiment_name": "r", "num_threads": 1, "seed": 3,
    }
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _retrain(*args, cache: Path):
    env = {k: v for k, v in os.environ.items() if k != "RETRAIN_DEBUG"}
    env.update(RETRAIN_CACHE=str(cache), HF_HUB_OFFLINE="1", TRL_EXPERIMENTAL_SILENCE="1")
    return subprocess.run([sys.executable, "-m", "retrain.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def _one_line(r, *parts: str) -> str:
    "The run ended in one `retrain:` line holding `parts`, exit status 2, no traceback; that line."
    lines = [line for line in r.stderr.splitlines() if line.startswith("retrain:")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert all(p in lines[0] for p in parts), lines[0]
    assert r.stderr.rstrip().endswith(lines[0]), r.stderr[-1000:]  # the last thing said
    return lines[0]


def test_a_full_disk_is_one_line_and_resume_finishes_once_space_is_freed(tmp_path, request):
    if not _can_mount_here(request): return
    cache = tmp_path / "cache"  # the model cache is on another filesystem: only the run directory is short of space
    with _tmpfs(tmp_path / "disk", "6m") as disk:
        cfg, run_dir = _config(tmp_path, disk / "runs"), disk / "runs" / "r"
        ckpts = run_dir / "checkpoints"
        # a checkpoint is ~3.5 MB: the first fits, the second fills the disk (torch says only "unexpected pos")
        r = _retrain("run", str(cfg), cache=cache)
        _one_line(r, f"retrain: no space left on device writing {ckpts / 'checkpoint-2'} (",
                  "free): free space, then run again with --resume")
        assert [p.name for p in complete_checkpoints(ckpts)] == ["checkpoint-1"], list(ckpts.iterdir())
        assert check_checkpoint(ckpts / "checkpoint-1").ok  # intact: every file as its manifest recorded it
        assert not (ckpts / "checkpoint-2").exists()  # the half-written checkpoint is gone, its space freed
        steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert steps in ([1], [1, 2]), steps  # whole lines only
        # a disk full to the last byte: even the lock cannot be taken
        _fill(disk / "ballast")
        r = _retrain("run", str(cfg), "--resume", cache=cache)
        _one_line(r, f"retrain: no space left on device writing {run_dir / '.retrain.lock'} (0 B free): free space, "
                     "then run again with --resume")
        assert check_checkpoint(ckpts / "checkpoint-1").ok
        # space freed: the run resumes from checkpoint-1 and finishes, every step logged once
        (disk / "ballast").unlink()
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        r = _retrain("run", str(cfg), "--resume", cache=cache)
        assert r.returncode == 0, r.stderr[-3000:]
        assert [json.loads(line)["step"]
                for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == list(range(1, STEPS + 1))
        assert json.loads((run_dir / "results.json").read_text())["global_step"] == STEPS
        assert (run_dir / "report.html").is_file() and (run_dir / "final" / "model.safetensors").is_file()


def test_logs_and_the_report_stay_whole_on_a_full_disk(tmp_path, request):
    """Step after step of logs until the disk is full: one `DiskFullError` naming the log, and every line whole;
    then the report does not fit: named too, and no half report or temporary file is left."""
    if not _can_mount_here(request): return
    from retrain.disk import DiskFullError
    from retrain.report import write_report
    from retrain.rundir import RunLogger
    from retrain.testing import demo_logs, write_demo_run
    with _tmpfs(tmp_path / "disk", "1m") as disk:
        write_demo_run(disk, steps=3)
        log = RunLogger(disk)
        with pytest.raises(DiskFullError) as e:
            for step in range(3, 10_000): log.on_step(step, *demo_logs(step, 8))
        assert (str(e.value).startswith(f"no space left on device writing {disk}/")
                and "jsonl (" in str(e.value)), e.value
        for name in ("metrics.jsonl", "rollouts.jsonl"):
            text = (disk / name).read_text()
            assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines()), name  # no torn line
        assert len((disk / "metrics.jsonl").read_text().splitlines()) >= 4  # steps were logged until the disk filled
        with pytest.raises(DiskFullError, match=f"no space left on device writing {disk / 'report.html'} "):
            write_report(disk)
        assert not any(p.name.startswith((".report", "report"))
                       for p in disk.iterdir()), sorted(p.name for p in disk.iterdir())
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        assert write_report(disk).is_file()  # space freed: the report is written
