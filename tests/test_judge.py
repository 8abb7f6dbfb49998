"""The LLM judge against a stand-in OpenAI-compatible endpoint running as its own process (tests/judge_server.py)."""
import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from retrain.judge import JudgeError, LLMJudge, OpenAIChat
from retrain.types import RawRolloutData

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def endpoint():
    proc = subprocess.Popen([sys.executable, str(HERE / "judge_server.py"), "0"], stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate(); proc.wait(10)


def episode(answer: str, question: str = "What is 45*123?") -> RawRolloutData:
    msgs = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return RawRolloutData(prompt_ids=[1], messages=msgs, final_answer=answer,
                          row={"prompt": question, "answer": "5535"})


def test_absolute_and_relative_over_http(endpoint):
    judge = LLMJudge(OpenAIChat(endpoint, "stand-in"), "The right product.")
    group = [episode("5535"), episode("5536"), episode("5535")]
    absolute = asyncio.run(judge.absolute(group, references=["5535"] * 3))
    assert [v.score for v in absolute] == [1.0, 0.0, 1.0]
    assert absolute[1].reply == "Checked the answer.\nSCORE: 0"
    relative = asyncio.run(judge.relative(group, reference="5535"))
    assert [v.score for v in relative] == [1.0, 0.0, 1.0]
    assert relative[0].reply.startswith("Compared them. {")


def test_endpoint_down_is_an_infrastructure_failure(endpoint):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    dead = OpenAIChat(f"http://127.0.0.1:{port}/v1", "stand-in", timeout=2, retries=1, backoff=0.01)
    with pytest.raises(JudgeError, match="no usable answer after 2 attempt"):
        asyncio.run(LLMJudge(dead, "Right.").absolute([episode("5535")]))
