import pytest

from tmx_artifacts import IntegrityError, LockError, content_hash, export, load, lock, pinned

SOURCE = "def launch(x, scale=1):\n    return [v * scale for v in x]\n"


def test_the_hash_covers_source_and_configuration_and_ignores_key_order():
    base = content_hash(SOURCE, {"a": 1, "b": 2})
    assert base.startswith("sha256:") and len(base) == len("sha256:") + 64
    assert content_hash(SOURCE, {"b": 2, "a": 1}) == base
    assert content_hash(SOURCE + " ", {"a": 1, "b": 2}) != base
    assert content_hash(SOURCE, {"a": 1, "b": 3}) != base


def test_load_runs_only_a_kernel_whose_hash_matches():
    digest = content_hash(SOURCE, {"scale": 3})
    assert load(SOURCE, {"scale": 3}, digest)([1, 2]) == [3, 6]
    tampered = SOURCE.replace("v * scale", "v * scale + 1")
    with pytest.raises(IntegrityError, match="does not match"):
        load(tampered, {"scale": 3}, digest)
    with pytest.raises(IntegrityError, match="does not match"):
        load(SOURCE, {"scale": 4}, digest)  # the configuration is part of the artifact
    with pytest.raises(IntegrityError, match="no launch"):
        load("x = 1\n", {}, content_hash("x = 1\n", {}))


def test_tampered_code_never_executes(tmp_path):
    marker = tmp_path / "ran"
    evil = f"open({str(marker)!r}, 'w').write('x')\ndef launch():\n    pass\n"
    with pytest.raises(IntegrityError):
        load(evil, {}, content_hash(SOURCE, {}))
    assert not marker.exists()


def kernel(op, speedup, created, digest, kid):
    return {"id": kid, "op": op, "dtype": "float16", "hardware": "cuda-sm90", "content_hash": digest,
            "config": {}, "speedup": speedup, "job_id": "j", "created_at_unix_ms": created, "source": "ignored"}


def test_export_is_stable_and_lock_pins_one_kernel_per_key():
    kernels = [kernel("rmsnorm", 1.2, 1, "sha256:a", "k1"), kernel("attention", 1.3, 2, "sha256:b", "k2"),
               kernel("rmsnorm", 1.5, 3, "sha256:c", "k3")]
    doc = export(kernels)
    assert [k["id"] for k in doc["kernels"]] == ["k2", "k3", "k1"] and "source" not in doc["kernels"][0]
    pins = lock([kernels[1], kernels[2]])
    assert pinned(pins, "rmsnorm", "float16", "cuda-sm90") == "sha256:c"
    with pytest.raises(LockError, match="pins no kernel"):
        pinned(pins, "softmax", "float16", "cuda-sm90")
    with pytest.raises(LockError, match="two different"):
        lock([kernels[0], kernels[2]])
    with pytest.raises(LockError, match="format"):
        pinned({"format": 99}, "rmsnorm", "float16", "cuda-sm90")


def test_check_refuses_a_swapped_kernel_without_running_it(tmp_path):
    from types import SimpleNamespace

    from tmx_artifacts import check

    marker = tmp_path / "ran"
    evil = f"open({str(marker)!r}, 'w').write('x')\ndef launch():\n    pass\n"
    good = SimpleNamespace(op="o", dtype="d", hardware="h", source=SOURCE, config_json='{"scale": 2}',
                           content_hash=content_hash(SOURCE, {"scale": 2}))
    assert check(good) == {"scale": 2}
    swapped = SimpleNamespace(**{**vars(good), "source": evil})  # the record's hash still claims the good code
    with pytest.raises(IntegrityError):
        check(swapped)
    assert not marker.exists()
