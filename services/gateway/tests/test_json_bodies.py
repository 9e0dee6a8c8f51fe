"""The request path's JSON parser: orjson's speed, the standard library's acceptance and errors."""

import json

import pytest

from tmx_gateway.domain.json_bodies import parse, parse_exact

BODIES = [
    b'{"model": "m", "messages": [{"role": "user", "content": "caf\\u00e9 \xe2\x98\x95"}], "stream": true}',
    b'{"model": "m", "model": "alias"}',  # a repeated key: the last wins
    b'{"temperature": NaN, "top_p": Infinity, "seed": -Infinity}',  # not JSON; the standard library takes it
    b'{"content": "half a surrogate \\ud800"}',
    b'{"x": 1e400, "y": 0.1, "z": -0.0, "n": -9223372036854775808, "u": 18446744073709551615}',
    '{"model": "m"}'.encode("utf-16"),  # the standard library detects UTF-16 and UTF-32
    b'  [1, 2.5, "three", null, false]  ',
]


@pytest.mark.parametrize("body", BODIES)
def test_every_body_parses_as_the_standard_library_parses_it(body):
    assert repr(parse(body)) == repr(json.loads(body))  # repr: NaN is unequal to itself, -0.0 equal to 0.0


def test_an_integer_beyond_64_bits_is_read_as_a_float():
    """The one difference, why a body written out again is parsed by the standard library (test_gateway_http)."""
    assert parse(b'{"seed": 123456789012345678901234567890}') == {"seed": 1.2345678901234568e+29}


@pytest.mark.parametrize("body", [b'{"model": "m"', b"", b"\xff\xfe\x00", b'{"a": 1} x', b"{'a': 1}"])
def test_invalid_json_raises_the_standard_librarys_error_and_message(body):
    with pytest.raises(ValueError) as expected:
        json.loads(body)
    with pytest.raises(type(expected.value)) as got:
        parse(body)
    assert str(got.value) == str(expected.value)  # the 400's message is the same as before


@pytest.mark.parametrize("depth", [1_000, 2_000, 100_000])
def test_a_body_nested_too_deep_to_read_is_invalid_json_not_a_recursion_error(depth):
    """orjson reads 1024 levels, the standard library as deep as Python's recursion limit lets it (~1000): past
    either, the parser that meets it raises ValueError, which the edge answers with a 400."""
    body = b"[" * depth + b"]" * depth
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_exact(body)
    if depth > 1024:
        with pytest.raises(ValueError, match="nested too deeply"):
            parse(body)
    else:
        value, levels = parse(body), 0  # orjson read it: 1000 lists, one inside another
        while value is not None:
            value, levels = value[0] if value else None, levels + 1
        assert levels == depth
