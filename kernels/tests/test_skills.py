"""The playbooks parse, cover every op, and search ranks by relevance rather than substring."""

import subprocess
import sys

import pytest

from tmx_kernels.skills import Library, SkillError, parse, tokens

GENERAL = {"gemm-tiling", "reductions", "memory-coalescing", "occupancy-and-registers", "numerical-stability",
           "quantization-fp8-int8", "porting-cuda-to-triton", "testing-and-benchmarking"}


@pytest.fixture(scope="module")
def library():
    return Library.load()


def test_every_op_has_a_playbook_and_the_general_ones_exist(library):
    from tmx_kernels import op_names

    assert GENERAL <= set(library.skills)
    for op in op_names():
        assert library.for_op(op), f"no playbook applies to {op}"
        assert library.for_op(op)[0].category == "op"
    for skill in library.list():
        assert skill.tags and skill.hardware and len(skill.body) > 400


def test_list_filters_by_category(library):
    ops = library.list("op")
    assert ops and all(s.category == "op" for s in ops)
    assert len(library.list()) == len(ops) + len(library.list("technique")) + len(library.list("process"))
    assert library.list("nope") == []


@pytest.mark.parametrize("query, best", [
    ("quantize activations to fp8 e4m3", "fp8-quantization"),
    ("top-p nucleus sampling without sort", "sampling"),
    ("variance of rows with a large mean", "layernorm"),
    ("grouped query attention decode mask", "flash-attention"),
    ("paged kv cache slot mapping", "kv-cache-append"),
    ("L2 flush median timing", "testing-and-benchmarking"),
    ("register spills num_warps", "occupancy-and-registers"),
])
def test_search_ranks_the_most_relevant_playbook_first(library, query, best):
    assert library.search(query)[0][0].name == best


def test_search_is_not_a_substring_match(library):
    # "quantization" and "quantize" share a stem; no playbook contains the literal phrase
    assert library.search("quantizing weights")[0][0].name in {"quantization-fp8-int8", "int8-weight-only-matmul"}
    assert not any("quantizing weights" in s.text.lower() for s in library.list())
    # a term every playbook uses carries no weight; an unknown term matches nothing
    assert library.search("zzzunknown") == []
    scores = [score for _, score in library.search("kernel softmax", limit=20)]
    assert scores == sorted(scores, reverse=True) and library.search("kernel softmax")[0][0].name == "softmax"


def test_bundle_respects_the_budget_and_says_what_it_left_out(library):
    whole = library.bundle(["rmsnorm", "reductions"], max_chars=100000)
    assert "# Playbook: rmsnorm" in whole and "# Playbook: reductions" in whole and "omitted" not in whole
    small = library.bundle(["rmsnorm", "reductions", "softmax"], max_chars=1500)
    assert len(small) <= 1500 and "# Playbook: rmsnorm" in small and "cut to fit" in small
    assert "omitted for size: reductions, softmax" in small
    with pytest.raises(SkillError, match="known"):
        library.bundle(["nope"])


def test_bad_front_matter_is_a_clear_error(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "SKILL.md").write_text("---\nname: x\n---\nbody")
    with pytest.raises(SkillError, match="description"):
        parse(tmp_path / "x" / "SKILL.md")
    assert tokens("Quantizing tl.dot FP8_e4m3") == ["quant", "tl", "dot", "fp8", "e4m3"]


def test_skills_module_does_not_import_torch():
    code = "import sys, tmx_kernels.skills as s; s.Library.load(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
