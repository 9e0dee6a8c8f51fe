"""The prompt as prefix-aware routing renders it, whatever shapes a client's messages take."""

from tmx_gateway.domain.routing.prompt import prompt_text


def test_a_chat_renders_its_messages_text_in_order():
    payload = {"messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "image_url"},
                                                         {"type": "text", "text": "there"}]}]}
    assert prompt_text(payload) == "<system>Be brief.\n<user>Hi there\n"


def test_parts_that_are_not_text_render_as_nothing_rather_than_failing():
    """The backend judges such a body; routing only needs a stable rendering of it."""
    payload = {"messages": [5, {"role": "user", "content": [5, {"type": "text", "text": 5}, {"text": ["x"]},
                                                            {"type": "text", "text": "ok"}]}]}
    assert prompt_text(payload) == "<user>ok\n"


def test_a_completion_renders_its_prompt_and_token_ids_render_as_nothing():
    assert prompt_text({"prompt": "Once"}) == "Once" and prompt_text({"prompt": ["Once"]}) == "Once"
    assert prompt_text({"prompt": [1, 2, 3]}) == "" and prompt_text({"prompt": {"a": 1}}) == ""


def test_a_responses_request_renders_as_the_chat_it_stands_for():
    """Instructions and input render as the system and user messages would: the same prefix, the same backend."""
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    assert prompt_text({"instructions": "Be brief.", "input": "Hi"}) == prompt_text(chat)
    assert prompt_text({"instructions": "Be brief.", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "Hi"}]}]}) == prompt_text(chat)
    assert prompt_text({"input": 5}) == ""
