"""Fail if any notebook carries outputs, execution counts or widget state (run `nbdev-clean` to fix)."""
import json
import sys
from pathlib import Path

bad = []
for p in sorted(Path(sys.argv[1] if len(sys.argv) > 1 else "nbs").rglob("*.ipynb")):
    if ".ipynb_checkpoints" in p.parts: continue
    nb = json.loads(p.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if any(c.get("outputs") or c.get("execution_count") for c in code): bad.append(f"{p}: cells with outputs")
    if "widgets" in nb.get("metadata", {}): bad.append(f"{p}: widget state in metadata")
if bad:
    print("Notebooks are not clean (run `nbdev-clean`):\n  " + "\n  ".join(bad))
    sys.exit(1)
print("notebooks clean")
