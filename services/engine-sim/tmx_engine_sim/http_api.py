"""The OpenAI-compatible HTTP surface of the simulator, shaped like vLLM's responses and errors."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import struct
import time
import uuid
import zlib
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tmx_engine_sim.domain.engine import Sequence, SequenceTooLong
from tmx_engine_sim.domain.tokenizer import continuation, generated_word, message_problem, render_chat, tokenize
from tmx_engine_sim import responses_api
from tmx_engine_sim.faults import Faults
from tmx_engine_sim.runner import DONE, EngineRunner
from tmx_engine_sim.settings import Settings


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "BadRequestError", param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param = status, message, type_, param


def _error(exc: ApiError) -> JSONResponse:
    body = {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.status}}
    return JSONResponse(body, status_code=exc.status)


def _messages(messages) -> list[dict]:
    """A request's chat messages, checked as vLLM's validation checks them; ApiError 400 naming the first problem."""
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "messages must be a non-empty list of message objects", param="messages")
    for i, message in enumerate(messages):
        if (problem := message_problem(message)) is not None:
            raise ApiError(400, f"messages.{i}: {problem}", param="messages")
    return messages


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


class SimApi:
    def __init__(self, settings: Settings, runner: EngineRunner, faults: Faults, refuse: Callable[[], None]) -> None:
        self.settings = settings
        self.runner = runner
        self.faults = faults
        self._refuse = refuse
        self._rng = random.Random()

    # --- helpers -------------------------------------------------------------------------------------
    async def _json_body(self, request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"invalid JSON body: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        model = body.get("model")
        if model not in self.settings.served_models:
            raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        return body

    def _max_tokens(self, body: dict, prompt_len: int) -> int:
        value = body.get("max_completion_tokens", body.get("max_tokens"))
        if value is None:
            value = self.settings.default_max_tokens
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ApiError(400, "max_tokens must be a positive integer", param="max_tokens")
        if prompt_len + value > self.settings.max_model_len:
            raise ApiError(
                400,
                f"This model's maximum context length is {self.settings.max_model_len} tokens. However, you "
                f"requested {prompt_len + value} tokens ({prompt_len} in the messages, {value} in the completion).",
                param="max_tokens",
            )
        return value

    async def _apply_faults(self) -> None:
        if self.faults.stall_s > 0:
            await asyncio.sleep(self.faults.stall_s)
        if self.faults.should_error(self._rng):
            raise ApiError(500, "injected fault", "InternalServerError")

    # --- endpoints -----------------------------------------------------------------------------------
    async def chat_completions(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            messages = _messages(body.get("messages"))
            if body.get("continue_final_message"):
                # a deterministic model continues a prefix exactly as it would have generated it: the same
                # seed (the conversation before the prefix) and the word index where the prefix stops
                split = continuation(messages)
                if split is None:
                    raise ApiError(400, "continue_final_message needs the final message to be the assistant's",
                                   param="messages")
                before, prefix = split
                prompt = render_chat(before)
                return await self._generate(request, body, prompt, tokenize(prompt + prefix), chat=True,
                                            offset=len(prefix.split()))
            prompt = render_chat(messages)
            return await self._generate(request, body, prompt, tokenize(prompt), chat=True)
        except ApiError as exc:
            return _error(exc)

    async def responses(self, request: Request) -> Response:
        """OpenAI's Responses API, as vLLM serves it: answered as the chat completion of its input (see
        responses_api)."""
        try:
            body = await self._json_body(request)
            try:
                messages = responses_api.messages_of(body)
            except responses_api.InputError as exc:
                raise ApiError(400, str(exc), param="input") from None
            prompt = render_chat(messages)
            answer = await self._generate(request, responses_api.chat_body(body, messages), prompt, tokenize(prompt),
                                          chat=True)
        except ApiError as exc:
            return _error(exc)
        if isinstance(answer, StreamingResponse):
            return StreamingResponse(responses_api.events_of(answer.body_iterator, body),
                                     media_type="text/event-stream")
        if answer.status_code != 200:
            return answer
        return Response(_dumps(responses_api.response_of(json.loads(answer.body), body)), media_type="application/json")

    async def completions(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if isinstance(prompt, str):
                tokens = tokenize(prompt)
            elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
                tokens, prompt = list(prompt), " ".join(map(str, prompt))
            else:
                raise ApiError(400, "prompt must be a string, a list of one string, or a list of token ids", param="prompt")
            return await self._generate(request, body, prompt, tokens, chat=False)
        except ApiError as exc:
            return _error(exc)

    async def _generate(self, request: Request, body: dict, prompt: str, tokens: list[int], chat: bool,
                        offset: int = 0) -> Response:
        """`offset`: words of the answer already given (a continued prefix); generation resumes after them.
        Text that continues other text (a continued answer, or any completion of a prompt that does not end in
        whitespace) starts with a space, as a real tokenizer's next word would."""
        if not tokens:
            raise ApiError(400, "prompt is empty", param="prompt" if not chat else "messages")
        if not isinstance(body.get("stream", False), bool):
            raise ApiError(400, "stream must be a boolean", param="stream")
        if not isinstance(body.get("stream_options") or {}, dict):
            raise ApiError(400, "stream_options must be an object", param="stream_options")
        max_tokens = self._max_tokens(body, len(tokens))
        await self._apply_faults()
        seq = Sequence(uuid.uuid4().hex, tokens, max_tokens)
        try:
            tracked = self.runner.submit(seq)
        except SequenceTooLong as exc:
            raise ApiError(400, str(exc), param="max_tokens") from exc
        seed = zlib.crc32(prompt.encode())
        spaced = bool(offset) or (not chat and not prompt[-1:].isspace())
        created = int(time.time())
        rid = ("chatcmpl-" if chat else "cmpl-") + seq.id
        model = body["model"]
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            stream = self._stream(tracked, seed, rid, created, model, chat, include_usage, offset, spaced)
            return StreamingResponse(stream, media_type="text/event-stream")
        async def collect() -> list[str]:
            words = []
            while (index := await tracked.tokens.get()) is not DONE:
                words.append(generated_word(seed, offset + index))
            return words

        async def client_gone() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        # like vLLM's server: a client that disconnects aborts its request, streamed or not
        collecting, watching = asyncio.ensure_future(collect()), asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({collecting, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            if not collecting.done():
                collecting.cancel()
            self.runner.abort(tracked)
        if not collecting.done() or collecting.cancelled():
            return Response(status_code=499)
        words = collecting.result()
        text = (" " if spaced and words else "") + " ".join(words)
        usage = self._usage(seq)
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": "length"}
            payload = {"id": rid, "object": "chat.completion", "created": created, "model": model,
                       "choices": [choice], "usage": usage}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
            payload = {"id": rid, "object": "text_completion", "created": created, "model": model,
                       "choices": [choice], "usage": usage}
        return Response(_dumps(payload), media_type="application/json")

    @staticmethod
    def _usage(seq: Sequence) -> dict:
        prompt = len(seq.prompt_tokens)
        return {"prompt_tokens": prompt, "completion_tokens": seq.generated, "total_tokens": prompt + seq.generated,
                "prompt_tokens_details": {"cached_tokens": seq.cached_tokens}}

    async def _stream(self, tracked, seed: int, rid: str, created: int, model: str, chat: bool, include_usage: bool,
                      offset: int = 0, spaced: bool = False):
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choices: list, usage: dict | None = None) -> bytes:
            payload = {"id": rid, "object": kind, "created": created, "model": model, "choices": choices}
            if usage is not None:
                payload["usage"] = usage
            return f"data: {_dumps(payload)}\n\n".encode()

        def piece(text: str, finish: str | None) -> dict:
            if chat:
                delta = {"content": text} if finish is None else {}
                return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

        # like vLLM, the role chunk goes with the first token, once the prompt is prefilled (a gateway reads the
        # first bytes of a stream as the end of its prefill)
        role = chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                       "finish_reason": None}]) if chat else b""
        try:
            sent = 0
            while (index := await tracked.tokens.get()) is not DONE:
                if self.faults.drop_after_tokens and sent >= self.faults.drop_after_tokens:
                    raise ConnectionAbortedError("injected fault: stream dropped")
                word = generated_word(seed, offset + index)
                yield role + chunk([piece(word if sent == 0 and not spaced else " " + word, None)])
                role = b""
                sent += 1
            yield role + chunk([piece("", "length")])
            if include_usage:
                yield chunk([], self._usage(tracked.seq))
            yield b"data: [DONE]\n\n"
        finally:
            self.runner.abort(tracked)

    async def tokenize(self, request: Request) -> Response:
        """vLLM's /tokenize: a prompt's tokens, or a chat's as its completion would see them (generation prompt
        included), with the count and the context length."""
        try:
            body = await self._json_body(request)
            messages, prompt = body.get("messages"), body.get("prompt")
            if messages is not None:
                tokens = tokenize(render_chat(_messages(messages)))
            elif isinstance(prompt, str):
                tokens = tokenize(prompt)
            else:
                raise ApiError(400, "either prompt (a string) or messages is required", param="prompt")
            return JSONResponse({"count": len(tokens), "max_model_len": self.settings.max_model_len,
                                 "tokens": tokens})
        except ApiError as exc:
            return _error(exc)

    async def embeddings(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            inputs = body.get("input")
            if isinstance(inputs, str):
                inputs = [inputs]
            if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
                raise ApiError(400, "input must be a string or a non-empty list of strings", param="input")
            await self._apply_faults()
            total = sum(len(tokenize(text)) for text in inputs)
            await asyncio.sleep(self.runner.core.timing.prefill_seconds(total) * self.runner.time_scale)
            data = [{"object": "embedding", "index": i, "embedding": self._embed(text)} for i, text in enumerate(inputs)]
            usage = {"prompt_tokens": total, "total_tokens": total}
            return JSONResponse({"object": "list", "data": data, "model": body["model"], "usage": usage})
        except ApiError as exc:
            return _error(exc)

    def _embed(self, text: str) -> list[float]:
        """A deterministic unit vector per text (from SHA-256), so equal texts embed equally."""
        dim, raw, counter = self.settings.embedding_dim, b"", 0
        while len(raw) < dim * 4:
            raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
            counter += 1
        values = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dim}I", raw[: dim * 4])]
        norm = sum(v * v for v in values) ** 0.5 or 1.0
        return [v / norm for v in values]

    async def models(self, request: Request) -> Response:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "tensormux-sim", "root": name,
                 "max_model_len": self.settings.max_model_len} for name in self.settings.served_models]
        return JSONResponse({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.runner.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def faults_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = json.loads(await request.body())
                if not isinstance(changes, dict):
                    raise ValueError("body must be a JSON object")
                self.faults.update(changes)
            except (ValueError, TypeError) as exc:
                return _error(ApiError(400, str(exc)))
            if self.faults.refuse:
                self._refuse()
        return JSONResponse(self.faults.as_dict())

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/tokenize", self.tokenize, methods=["POST"]),
                Route("/v1/responses", self.responses, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/admin/faults", self.faults_endpoint, methods=["GET", "POST"]),
            ]
        )
