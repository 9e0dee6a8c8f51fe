"""Continuing a broken chat stream: what the client was told, what the next backend is asked, and how its
events are made to read as the same stream."""

import json

from tmx_gateway.domain.continuation import continuation_request, finish_events, read_transcript, rewrite


def sse(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def chunk(delta=None, finish=None, index=0, **extra):
    return {"id": "chatcmpl-1", "created": 7, "model": "m", "object": "chat.completion.chunk",
            "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish}], **extra}


SENT = [sse(chunk({"role": "assistant", "content": ""})) + sse(chunk({"content": "the"})),
        sse(chunk({"content": " of"}))]


def test_the_transcript_is_what_the_client_holds():
    t = read_transcript(SENT)
    assert (t.id, t.created, t.model, t.text, t.deltas, t.finished, t.obstacle) == (
        "chatcmpl-1", 7, "m", "the of", 2, False, "")


def test_a_transcript_of_crlf_events_is_the_same():
    """A server on sse-starlette ends its lines in CRLF: read as it would be with LF (split as they were relayed)."""
    crlf = [event.replace(b"\n", b"\r\n") for event in SENT]
    t = read_transcript(crlf)
    assert (t.text, t.deltas, t.finished, t.obstacle) == ("the of", 2, False, "")
    assert read_transcript([b"".join(crlf)[:-1], b"\n" + sse(chunk({"content": "!"}))]).text == "the of!"


def test_tool_calls_and_several_choices_cannot_be_continued():
    assert read_transcript([sse(chunk({"tool_calls": [{"index": 0}]}))]).obstacle == "a tool call in progress"
    assert read_transcript([sse(chunk({"content": "x"}, index=1))]).obstacle == "more than one choice"
    assert read_transcript([sse(chunk(finish="stop"))]).finished


def test_the_next_backend_continues_the_assistant_prefix_for_the_tokens_left():
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": True,
               "stream_options": {"include_usage": True}}
    body = continuation_request(payload, read_transcript(SENT))
    assert body["messages"][-1] == {"role": "assistant", "content": "the of"} and len(body["messages"]) == 2
    assert body["max_tokens"] == 4 and body["continue_final_message"] and body["add_generation_prompt"] is False
    assert body["stream_options"] == {"include_usage": True} and payload["max_tokens"] == 6  # not mutated
    assert continuation_request({**payload, "max_tokens": 2}, read_transcript(SENT)) is None  # nothing left
    assert "max_tokens" not in continuation_request({k: v for k, v in payload.items() if k != "max_tokens"},
                                                    read_transcript(SENT))


def test_continuation_events_read_as_the_same_stream():
    t = read_transcript(SENT)
    other = {"id": "chatcmpl-2", "created": 9, "model": "m"}
    assert rewrite(sse({**chunk({"role": "assistant", "content": ""}), **other}), t) is None  # a second preamble
    word = json.loads(rewrite(sse({**chunk({"content": " and"}), **other}), t)[6:])
    assert (word["id"], word["created"], word["choices"][0]["delta"]) == ("chatcmpl-1", 7, {"content": " and"})
    usage = json.loads(rewrite(sse({**other, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 4,
                                                                       "total_tokens": 16}}), t)[6:])["usage"]
    assert usage == {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}
    assert rewrite(b"data: [DONE]\n\n", t) == b"data: [DONE]\n\n"


def test_a_stream_that_broke_after_its_last_token_is_closed_properly():
    events = finish_events(read_transcript(SENT)).split(b"\n\n")
    assert json.loads(events[0][6:])["choices"][0]["finish_reason"] == "length" and events[1] == b"data: [DONE]"
    finished = read_transcript([*SENT, sse(chunk(finish="length"))])
    assert finish_events(finished) == b"data: [DONE]\n\n"


def completion_chunk(text="", finish=None):
    return {"id": "cmpl-1", "object": "text_completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]}


COMPLETION_SENT = [sse(completion_chunk("the")) + sse(completion_chunk(" of"))]


def test_a_completion_continues_from_its_prompt_plus_the_text_sent():
    from tmx_gateway.domain.continuation import unsupported

    t = read_transcript(COMPLETION_SENT)
    assert (t.text, t.deltas, t.object, t.obstacle) == ("the of", 2, "text_completion", "")
    payload = {"model": "m", "prompt": "Once", "max_tokens": 5, "stream": True}
    assert unsupported("/v1/completions", payload) == ""
    body = continuation_request(payload, t)
    assert (body["prompt"], body["max_tokens"]) == ("Oncethe of", 3) and "messages" not in body
    assert continuation_request({**payload, "prompt": ["Once"]}, t)["prompt"] == "Oncethe of"
    closing = json.loads(finish_events(t).split(b"\n\n")[0][6:])
    assert closing["object"] == "text_completion" and closing["choices"][0] == {
        "index": 0, "text": "", "logprobs": None, "finish_reason": "length"}


def test_requests_whose_streams_cannot_be_continued_say_why():
    from tmx_gateway.domain.continuation import unsupported

    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert unsupported("/v1/chat/completions", chat) == ""
    assert unsupported("/v1/chat/completions", {**chat, "n": 2}) == "streams of several choices are not"
    base = {"model": "m", "prompt": "x"}
    assert unsupported("/v1/completions", {**base, "prompt": [1, 2, 3]}).startswith("completions of token ids")
    assert unsupported("/v1/completions", {**base, "prompt": ["a", "b"]}).startswith("completions of token ids")
    assert unsupported("/v1/completions", {**base, "echo": True}) == "completions with echo or a suffix are not"
    assert unsupported("/v1/completions", {**base, "best_of": 3}) == "streams of several choices are not"
