"""Two real processes (`torchrun`, gloo on CPU): the collectives, advantages split over ranks, lock-stepped decoding
over an FSDP2-sharded model, the vLLM server generator serving both ranks through rank 0, and infrastructure failures
left out of a group that straddles two ranks."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_two_processes(tmp_path):
    env = {**os.environ, "RETRAIN_TEST_OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(ROOT / "tests" / "dist_worker.py")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    for i, o in enumerate(ranks):
        assert o["world"] == 2 and o["rank"] == i
        assert o["all_gather"] == [{"r": 0}, {"r": 1}]
        assert o["scatter"] == f"to{i}" and o["broadcast"] == "hello"
        assert o["any"] == [True, False] and o["sums"] == {"a": 3.0, "b": 4.0}
        assert o["adv_equal"] and o["adv_rows"] == 6  # the same advantages as one process over all 12 rollouts
        assert o["sharded"] and o["checks_ok"]
    assert ranks[0]["gather"] == [[0], [1, 1]] and ranks[1]["gather"] is None
    # very different episode lengths, the same number of (collective) forwards on both ranks; the short rank idled
    assert ranks[1]["model_tokens"] > 5 * ranks[0]["model_tokens"]
    assert ranks[0]["forwards"] == ranks[1]["forwards"]
    assert ranks[0]["idle_steps"] > 0 and ranks[1]["idle_steps"] == 0
    # rank 0 sent every rank's turns; each rank got its own, rank 1 none in the second round
    assert ranks[0]["server_requests"] == 2
    assert len(ranks[0]["server_lens"]) == 2 and len(ranks[1]["server_lens"]) == 2
    assert all(1 <= n <= 3 for o in ranks for n in o["server_lens"])


def test_two_processes_server_mode(tmp_path):
    "Two ranks train two steps through one vLLM client on rank 0 (stand-in server), weights synced once per step."
    env = {**os.environ, "RETRAIN_TEST_OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore", "TRL_EXPERIMENTAL_SILENCE": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(ROOT / "tests" / "dist_server_worker.py")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"server-rank{i}.json").read_text()) for i in range(2)]
    assert [o["has_client"] for o in ranks] == [True, False]  # only the main process holds TRL's client
    for o in ranks:
        assert o["step"] == 2 and len(o["diffs"]) == 2
        # each rank's 8 rollouts: token-exact, log-probs of the policy being trained
        for worst, checks_ok, n in o["diffs"]:
            assert checks_ok and n == 8 and worst < 5e-5, o["diffs"]  # float32 noise ~1e-5; unsynced > 1e-3
    counts = ranks[0]["counts"]
    assert counts["/update_weights"] == 2 and counts["/reset_prefix_cache"] == 2, counts
    assert ranks[0]["prompts"] >= 2 * 16  # every turn of both ranks' 16 episodes per step went through rank 0
    # infrastructure faults on rank 0, in a group straddling both ranks: exactly as one process leaving them out
    f = [o["faults"] for o in ranks]
    assert f[0]["failed"] == [False, True, True, False] and f[1]["failed"] == [False] * 4
    assert f[0]["infra_failed"] == f[1]["infra_failed"] == 2.0
    assert f[0]["mask_rows"][1] == f[0]["mask_rows"][2] == 0
    assert f[0]["num_items"] == f[1]["num_items"] == sum(f[0]["mask_rows"]) + sum(f[1]["mask_rows"])
    kept = torch.tensor([x for o in f for x, bad in zip(o["totals"], o["failed"]) if not bad])
    assert kept.std() > 0, "the group's rewards should differ"
    want = ((kept - kept.mean()) / (kept.std() + 1e-4)).tolist()
    got = [a for o in f for a, bad in zip(o["advantages"], o["failed"]) if not bad]
    assert all(abs(a - b) < 1e-5 for a, b in zip(got, want)), (got, want)
    assert f[0]["all_zero"][1] and f[0]["all_zero"][2]  # the failed rollouts: advantage 0 on every token
