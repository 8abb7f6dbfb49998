"""Fail on lines longer than pyproject's `line-length` (ruff's E501), less the first line of each `__all__` that
nbdev writes: it wraps the list at 120 characters and then puts `__all__ = ` in front.

    python tests/tools/check_line_length.py retrain tests benchmarks"""
import json
import subprocess
import sys
from pathlib import Path

EXCLUDE = ["retrain/_modidx.py"]  # nbdev's index of names, one entry a line

ruff = Path(sys.executable).parent / "ruff"
res = subprocess.run([ruff, "check", "--select", "E501", "--output-format", "json", "--exclude", ",".join(EXCLUDE),
                      *sys.argv[1:]], capture_output=True, text=True)
if res.returncode not in (0, 1): sys.exit(res.stderr)
bad = []
for d in json.loads(res.stdout):
    line = Path(d["filename"]).read_text().splitlines()[d["location"]["row"] - 1]
    if not line.startswith("__all__ = ["):
        bad.append(f"{Path(d['filename']).relative_to(Path.cwd())}:{d['location']['row']}: {d['message']}")
if bad:
    print("Lines too long (wrap them in the notebook, then nbdev-export):\n  " + "\n  ".join(bad))
    sys.exit(1)
print("line lengths ok")
