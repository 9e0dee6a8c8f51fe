"""Generate the Python stubs under tensormux/ from the one schema source in proto/.

Run `python libs/tmx-proto/generate.py` after changing a .proto; `--check` exits 1 when the committed
stubs differ from what the schemas generate (the test suite runs it).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
OUT_PACKAGE = "tensormux"


def generate(out_dir: Path) -> list[Path]:
    from grpc_tools import protoc  # build-time dependency only

    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package_dir in [out_dir / OUT_PACKAGE, *(p for p in (out_dir / OUT_PACKAGE).rglob("*") if p.is_dir())]:
        (package_dir / "__init__.py").touch()
    return sorted(p.relative_to(out_dir) for p in out_dir.rglob("*") if p.is_file())


def stale_files() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        expected = generate(fresh)
        committed = sorted(
            p.relative_to(HERE) for p in (HERE / OUT_PACKAGE).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
        stale = sorted(set(map(str, expected)) ^ set(map(str, committed)))
        stale += [str(p) for p in expected if (HERE / p).exists() and not filecmp.cmp(fresh / p, HERE / p, shallow=False)]
        return stale


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        if stale:
            print("stale generated stubs (run python libs/tmx-proto/generate.py):", *stale, sep="\n  ")
            sys.exit(1)
        print("stubs up to date")
        return
    target = HERE / OUT_PACKAGE
    shutil.rmtree(target, ignore_errors=True)
    generate(HERE)
    print(f"generated stubs in {target}")


if __name__ == "__main__":
    main()
