"""A small stdio MCP server for retrain's tests: a calculator and a slow calculator.

Run it as `python tests/mcp_server.py`. Environment variables shape its faults:
`MCP_SLOW_SECONDS` (default 0.5) is how long `slow_calculator` takes; with `MCP_DIE_AT_CALL=N` and
`MCP_DIE_ONCE_FILE=path`, the N-th tool call kills the server with SIGKILL, once (the file marks that it has
happened, so a restarted server lives on); `MCP_CALL_LOG=path` appends `start:TOOL` and `end:TOOL` lines for each call.
`MCP_PID_FILE=path` receives the server's process id. `MCP_TRANSPORT=streamable-http` serves it over HTTP at
http://127.0.0.1:MCP_PORT/mcp instead of stdio.
"""
import asyncio
import os
import signal
from pathlib import Path

from mcp.server.fastmcp import FastMCP

from retrain.tools import calculate

server = FastMCP("retrain-test-calculator", log_level="WARNING", port=int(os.environ.get("MCP_PORT", "8000")))
_calls = 0


def _log(event: str):
    if log := os.environ.get("MCP_CALL_LOG"):
        with open(log, "a") as f: f.write(event + "\n")


def _count(name: str):
    global _calls
    _calls += 1
    _log(f"start:{name}")
    die_at, once = os.environ.get("MCP_DIE_AT_CALL"), os.environ.get("MCP_DIE_ONCE_FILE")
    if die_at and once and _calls == int(die_at) and not Path(once).exists():
        Path(once).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


@server.tool()
def calculator(expression: str) -> str:
    """Evaluates an arithmetic expression (numbers, + - * / // % **, parentheses) and returns the result.

    Args:
        expression: The arithmetic expression, e.g. '(3+4)*2'
    """
    _count("calculator")
    try: return calculate(expression)
    finally: _log("end:calculator")


@server.tool()
async def slow_calculator(expression: str) -> str:
    """Like calculator, but takes a while (MCP_SLOW_SECONDS, default 0.5 s).

    Args:
        expression: The arithmetic expression, e.g. '(3+4)*2'
    """
    _count("slow_calculator")
    await asyncio.sleep(float(os.environ.get("MCP_SLOW_SECONDS", "0.5")))  # concurrent calls overlap
    try: return calculate(expression)
    finally: _log("end:slow_calculator")


if __name__ == "__main__":
    if pid_file := os.environ.get("MCP_PID_FILE"): Path(pid_file).write_text(str(os.getpid()))
    server.run(os.environ.get("MCP_TRANSPORT", "stdio"))  # or streamable-http, at http://127.0.0.1:MCP_PORT/mcp
