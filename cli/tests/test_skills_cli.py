"""`tmx skills` end to end through the real command."""

import subprocess
import sys


def tmx(*args):
    return subprocess.run([sys.executable, "-m", "tmx_cli.main", "skills", *args], capture_output=True, text=True,
                          timeout=60)


def test_search_show_bundle_and_list():
    search = tmx("search", "paged kv cache")
    assert search.returncode == 0 and search.stdout.splitlines()[0].split()[1] == "kv-cache-append"
    show = tmx("show", "sampling")
    assert show.returncode == 0 and show.stdout.startswith("# Playbook: sampling")
    bundle = tmx("bundle", "rmsnorm", "reductions", "--max-chars", "1500")
    assert bundle.returncode == 0 and len(bundle.stdout) <= 1501 and "omitted for size: reductions" in bundle.stdout
    listing = tmx("list", "--category", "technique")
    assert listing.returncode == 0 and "gemm-tiling" in listing.stdout and "flash-attention" not in listing.stdout


def test_unknown_names_and_empty_searches_fail_clearly():
    missing = tmx("show", "nope")
    assert missing.returncode == 1 and "no skill 'nope'" in missing.stderr
    assert tmx("search", "zzzunknown").returncode == 1
