"""What a tool served by an MCP server costs against the same tool in process, and what concurrent calls save.

The test MCP server (tests/mcp_server.py, stdio) serves `calculator` and `slow_calculator` (`--slow` seconds).
Measured through retrain's own tool runner (`call_tool`, validation and timeout included):
- `mcp_call_ms` / `local_call_ms`: the median of `--calls` sequential calculator calls, over MCP and in process;
- `concurrency`: `--batch` slow calls started together on the one connection, against the same calls one after
  another (ideal: `--batch`; the server handles calls concurrently because the slow tool is async).

    python benchmarks/mcp_calls.py [--calls 200] [--batch 16] [--slow 0.2]
"""
import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from retrain.config_models import MCPServerConfig
from retrain.mcp_tools import MCPServer
from retrain.tools import CalculatorTool, call_tool

SERVER = str(Path(__file__).resolve().parents[1] / "tests" / "mcp_server.py")


def median_ms(tool, n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        out = call_tool(tool, {"expression": f"{i}*7"})
        times.append(time.perf_counter() - t0)
        assert out.observation == str(i * 7), out
    return 1000 * statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--slow", type=float, default=0.2)
    a = ap.parse_args()
    srv = MCPServer(MCPServerConfig(name="bench", command=sys.executable, args=[SERVER],
                                    env={"MCP_SLOW_SECONDS": str(a.slow)}))
    t0 = time.perf_counter()
    calc, slow = srv.start()
    print(f"server start + tool list: {time.perf_counter() - t0:.2f} s")
    try:
        mcp_ms, local_ms = median_ms(calc, a.calls), median_ms(CalculatorTool(), a.calls)
        t0 = time.perf_counter()
        for i in range(a.batch): call_tool(slow, {"expression": f"{i}+1"})
        one_by_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.batch) as ex: list(ex.map(lambda i: call_tool(slow, {"expression": f"{i}+1"}),
                                                            range(a.batch)))
        together = time.perf_counter() - t0
    finally:
        srv.close()
    print(f"calculator call: MCP {mcp_ms:.2f} ms, in process {local_ms:.3f} ms (median of {a.calls})")
    print(f"{a.batch} slow calls ({a.slow} s each): one by one {one_by_one:.2f} s, together {together:.2f} s")
    print(f"RESULT mcp_call_ms={mcp_ms:.2f} local_call_ms={local_ms:.3f} concurrency={one_by_one / together:.1f}")


if __name__ == "__main__":
    main()
