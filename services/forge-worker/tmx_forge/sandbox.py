"""The child side of the verifier: one process runs one candidate (or one trusted baseline) and nothing else.

    python -m tmx_forge.sandbox SPEC_JSON

It never sees the reference, the expected outputs or the seed: the parent sends inputs as files in the
scratch directory and judges the outputs this process writes back. Commands arrive as JSON lines on a
private duplicate of stdin and replies leave on a private duplicate of stdout; fds 0 and 1 are pointed at
/dev/null before the candidate loads, so nothing it prints reaches the channel.

Before the candidate's module executes, resource limits (CPU seconds, address space) and an audit hook are
installed: no sockets, no subprocesses, no writes outside the scratch directory. A violation is recorded
where the candidate cannot reach it and reported with every reply, even if the candidate swallowed the error.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_BLOCKED_EVENTS = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn",
                   "os.kill", "ctypes.")
_PATH_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod",
                "shutil.rmtree", "shutil.move", "shutil.copyfile")  # allowed inside the scratch directory only


def _guard(scratch: str, violations: list[str], allow_processes: bool) -> None:
    """allow_processes: trusted templates (torch.compile runs the C++ compiler in subprocesses)."""
    scratch = os.path.realpath(scratch)
    blocked = tuple(e for e in _BLOCKED_EVENTS
                    if not (allow_processes and e in ("subprocess.", "os.posix_spawn", "os.fork", "os.exec")))

    def inside(path) -> bool:
        target = os.path.realpath(os.fsdecode(path))
        return target == scratch or target.startswith(scratch + os.sep)

    def hook(event: str, args: tuple) -> None:
        if event.startswith(blocked):
            violations.append(f"{event} is not allowed in the sandbox")
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event in _PATH_EVENTS:
            paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
            if not all(inside(p) for p in paths):
                violations.append(f"{event} outside the scratch directory")
                raise PermissionError(f"sandbox: {event} outside the scratch directory is not allowed")
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path, mode, flags = (list(args) + [None, 0])[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
            if writes and not inside(path) and os.fsdecode(path) != os.devnull:
                violations.append(f"write outside the scratch directory ({os.path.realpath(os.fsdecode(path))})")
                raise PermissionError("sandbox: writes outside the scratch directory are not allowed")

    sys.addaudithook(hook)


def _limits(cpu_s: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _load_candidate(path: str):
    spec = importlib.util.spec_from_file_location("tmx_candidate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.launch


def _as_outputs(result) -> list:
    import torch

    from tmx_kernels import as_outputs

    outputs = as_outputs(result)
    if not all(isinstance(t, torch.Tensor) for t in outputs):
        raise TypeError("launch must return a tensor or a tuple of tensors")
    return [t.detach().clone() for t in outputs]  # a copy the candidate holds no reference to


def _poison(inputs: tuple, device: str) -> None:
    """Fill and free memory the size of the inputs with NaN, so an output that is allocated but never written
    reads NaN instead of whatever an earlier computation left behind."""
    import torch

    size = sum(t.numel() * t.element_size() for t in inputs if isinstance(t, torch.Tensor))
    junk = torch.full((max(size, 1024) // 2,), float("nan"), dtype=torch.float32, device=device)
    del junk


def main() -> None:
    spec = json.loads(sys.argv[1])
    channel_in = os.fdopen(os.dup(0), "r")
    channel_out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    if spec["device"] == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    import torch

    from tmx_kernels import clone_inputs, get_op

    threads = spec.get("threads", 0)
    if threads:  # before anything runs: every process of a verification times on as many threads
        torch.set_num_threads(threads)
    violations: list[str] = []
    role = spec["role"]
    custom = spec.get("reference_source", "")  # a job's own op: its reference is untrusted code too

    def refuse(error: str) -> None:
        channel_out.write(json.dumps({"ok": False, "error": error, "violations": violations}) + "\n")
        channel_out.flush()

    ready: dict = {}
    op = None
    if role == "candidate" or (custom and role in ("eager", "oracle")):
        _limits(spec["cpu_s"], spec["memory_bytes"])
        _guard(spec["scratch"], violations, allow_processes=spec["trusted"])
    if custom and role in ("eager", "oracle"):
        from tmx_kernels.custom import op_from_source

        try:
            op = op_from_source(spec["op"], custom)
        except BaseException as exc:  # noqa: BLE001 - a reference that fails to load ends the job, not the worker
            refuse(f"the job's reference failed to load: {type(exc).__name__}: {exc}")
            return
        if role == "oracle":
            ready = {"tolerances": {str(d).removeprefix("torch."): [t.atol, t.rtol] for d, t in op.tolerances.items()},
                     "test_shapes": [list(s) for s in op.test_shapes], "mutates": list(op.mutates)}
    elif not custom and role in ("eager", "compile"):
        op = get_op(spec["op"])
    if role == "candidate":
        try:
            launch = _load_candidate(spec["source"])
        except BaseException as exc:  # noqa: BLE001 - a candidate that fails to load is a verdict
            refuse(f"failed to load: {type(exc).__name__}: {exc}")
            return
        config = spec["config"]
        fn = lambda *inputs: launch(*inputs, **config)  # noqa: E731
    elif role == "eager":
        fn = op.baseline
    elif role == "compile" and op is not None:
        fn = torch.compile(op.baseline, dynamic=False)
    elif role == "copy":  # moves the same bytes as the op: a floor no honest kernel can beat by much
        fn = lambda src, dst: dst.copy_(src)  # noqa: E731
    elif role == "oracle":  # answers make / reference / bytes; runs nothing timed
        fn = None
    else:
        raise SystemExit(f"unknown role {role}" + (" for a custom op" if custom else ""))

    def sync() -> None:
        if spec["device"] == "cuda":
            torch.cuda.synchronize()

    timing_sets: list = []
    last: dict[int, list] = {}
    flush_buffer = None  # on a GPU, zeroed before every timed call so no call finds its data in L2

    def flush() -> None:
        nonlocal flush_buffer
        if flush_buffer is None:
            size = 256 * 2**20 if spec["device"] == "cuda" else 64 * 2**20
            if spec["device"] == "cuda":  # twice the L2: nothing of the previous call survives in it
                size = max(size, 2 * getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0))
            flush_buffer = torch.empty(size, dtype=torch.uint8, device=spec["device"])
        flush_buffer.zero_()

    def check_threads() -> None:
        """A candidate that changes the thread count is timed on more cores than its baseline: a violation."""
        if threads and torch.get_num_threads() != threads:
            note = f"changed torch's thread count from {threads} to {torch.get_num_threads()}"
            if note not in violations:
                violations.append(note)

    check_threads()
    channel_out.write(json.dumps({"ok": True, "ready": True, "violations": violations, **ready}) + "\n")
    channel_out.flush()
    for line in channel_in:
        command = json.loads(line)
        reply: dict = {"ok": True}
        try:
            kind = command["cmd"]
            if kind == "run":  # two runs on fresh copies; the inputs as the first run left them
                inputs = torch.load(command["inputs"], weights_only=True)
                _poison(inputs, spec["device"])
                first_inputs = clone_inputs(inputs)
                first = _as_outputs(fn(*first_inputs))
                _poison(inputs, spec["device"])
                second = _as_outputs(fn(*clone_inputs(inputs)))
                sync()
                torch.save({"first": first, "second": second, "inputs_after": list(clone_inputs(first_inputs))},
                           command["out"])
            elif kind == "load":
                timing_sets = torch.load(command["inputs"], weights_only=True)
                last.clear()
            elif kind == "time":  # the parent's clock times this whole command; call i takes input set i
                keep = set(command.get("keep", ()))
                last.clear()
                flushing = command.get("flush", False)
                for i in range(command["calls"]):
                    if flushing:
                        flush()
                    result = fn(*timing_sets[i % len(timing_sets)])
                    if i in keep:
                        last[i] = result
                sync()
            elif kind == "flush":  # the flushes alone: the parent subtracts them from flushed batches
                for _ in range(command["calls"]):
                    flush()
                sync()
            elif kind == "make":  # oracle: the job's inputs for a shape and seed
                dtype = getattr(torch, command["dtype"])
                inputs = op.make_inputs(tuple(command["shape"]), dtype, command["seed"], spec["device"])
                torch.save(list(inputs), command["out"])
            elif kind == "reference":  # oracle: the expected outputs for inputs the parent sends
                inputs = torch.load(command["inputs"], weights_only=True)
                torch.save(list(_as_outputs(op.reference(*inputs))), command["out"])
            elif kind == "bytes":  # oracle: what one call moves, for the copy floor
                reply["bytes"] = int(op.bytes_moved(tuple(command["shape"]), getattr(torch, command["dtype"])))
            elif kind == "save_last":
                torch.save({str(k): _as_outputs(v) for k, v in last.items()}, command["out"])
            elif kind == "quit":
                break
        except BaseException as exc:  # noqa: BLE001 - reported as the candidate's failure, never crashes the parent
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        check_threads()
        reply["violations"] = violations
        channel_out.write(json.dumps(reply) + "\n")
        channel_out.flush()


if __name__ == "__main__":
    main()
