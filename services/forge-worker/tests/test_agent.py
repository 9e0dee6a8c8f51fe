"""The LLM agent generator against a scripted OpenAI-compatible endpoint (a real HTTP server; the model is
the only fake), with every candidate going through the real verifier."""

import asyncio
from pathlib import Path

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tmx_forge.agent import AgentError, AgentGenerator
from tmx_forge.domain.agent_prompt import Budget, extract_code, feedback_message
from tmx_forge.verifier import Limits, Verifier
from tmx_kernels import get_op

HONEST = (Path(__file__).parent / "candidates" / "honest_rmsnorm.py").read_text()
WRONG = "import torch\n\n\ndef launch(x, w, eps=1e-6):\n    return torch.zeros_like(x)\n"


def endpoint(replies, seen, status=200):
    async def chat(request):
        seen.append(await request.json())
        content = replies[min(len(seen), len(replies)) - 1]
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": content}}],
                             "usage": {"prompt_tokens": 1000, "completion_tokens": 500}}, status_code=status)
    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


async def test_the_agent_iterates_on_verifier_feedback_until_its_cost_budget_is_spent(asgi_server):
    seen = []
    replies = [f"Here:\n```python\n{WRONG}```", "I think it is fine.", f"Fixed:\n```python\n{HONEST}```"]
    async with asgi_server(endpoint(replies, seen)) as (url, _), aiohttp.ClientSession() as http:
        # 1500 tokens a reply at $0.001 per 1k: the third reply crosses the $0.004 cap
        budget = Budget(max_candidates=10, max_cost_usd=0.004, usd_per_1k_tokens=0.001)
        agent = AgentGenerator(http, url + "/v1", "kernel-model", "k", budget)
        agent.start(get_op("rmsnorm"), "float32", "cpu", [[16, 64]])
        verifier = Verifier("rmsnorm", "float32", "cpu", [[16, 64]],
                            Limits(wall_s=120, repeats=2, compile_baseline=False))
        verdicts, last = [], None
        while (candidate := await agent.propose(last)) is not None:
            last = await asyncio.to_thread(verifier.verify, candidate)
            verdicts.append(last.reason_code)
    assert verdicts == ["incorrect", "passed"]
    assert len(seen) == 3 and budget.cost_usd == pytest.approx(0.0045) and "cost budget" in budget.exhausted
    first = seen[0]["messages"]
    assert seen[0]["model"] == "kernel-model" and first[0]["role"] == "system"
    assert "def reference" in first[1]["content"] and "# Playbook: rmsnorm" in first[1]["content"]
    assert "atol 1e-05" in first[1]["content"]
    assert seen[1]["messages"][-1]["content"].startswith("Rejected (incorrect): shape 16x64")
    assert "No ```python code block" in seen[2]["messages"][-1]["content"]


async def test_an_endpoint_error_is_an_agent_error_not_a_crash(asgi_server):
    async with asgi_server(endpoint(["x"], [], status=500)) as (url, _), aiohttp.ClientSession() as http:
        agent = AgentGenerator(http, url + "/v1", "m", "", Budget(3, 1.0, 0.0))
        agent.start(get_op("rmsnorm"), "float32", "cpu", [[4, 8]])
        with pytest.raises(AgentError, match="answered 500"):
            await agent.propose()
    with pytest.raises(AgentError, match="AGENT_BASE_URL"):
        AgentGenerator(None, "", "", "", Budget(1, 1.0, 0.0))


def test_a_free_endpoint_still_ends_at_the_candidate_budget():
    budget = Budget(max_candidates=2, max_cost_usd=1.0, usd_per_1k_tokens=0.0)
    budget.spend(10**6, 10**6)
    budget.candidates = 2
    assert budget.cost_usd == 0.0 and "candidate budget" in budget.exhausted


def test_prompt_pieces():
    assert extract_code("a\n```python\nx = 1\n```\nb\n```python\ny = 2\n```") == "x = 1\n"
    assert extract_code("```\nz = 3\n```") == "z = 3\n" and extract_code("no code") is None
    assert "1.2x" in feedback_message("passed", "ok", {"16x64": 1.2})
    assert feedback_message("static", "line 1: forbidden import os", {}).startswith("Rejected (static)")


async def test_the_agent_writes_a_custom_op_from_its_sandboxed_reference(asgi_server):
    reference = (Path(__file__).parent / "references" / "gelu_tanh.py").read_text()
    honest = "```python\nimport torch\n\n\ndef launch(x):\n    return torch.nn.functional.gelu(x, approximate='tanh')\n```"
    seen: list = []
    verifier = Verifier("my_gelu_tanh", "float32", "cpu", [[16, 64]],
                        Limits(wall_s=120, repeats=3, min_batch_s=0.005), reference_source=reference)
    try:
        async with asgi_server(endpoint([honest], seen)) as (url, _), aiohttp.ClientSession() as http:
            agent = AgentGenerator(http, f"{url}/v1", "m", "", Budget(1, 1.0, 0.0), 2000)
            agent.start(verifier.op, "float32", "cpu", [[16, 64]], reference)
            candidate = await agent.propose()
        prompt = seen[0]["messages"][1]["content"]
        assert "def reference(x):" in prompt and "0.044715" in prompt  # the job's own reference, whole
        assert "#0 (16, 64) float32" in prompt  # inputs described from the oracle's make_inputs
        verdict = await asyncio.to_thread(verifier.verify, candidate)
        assert verdict.ok, verdict.reason
    finally:
        verifier.close()
