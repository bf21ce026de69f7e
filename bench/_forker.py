"""A bare preloaded fork server for the benchmarks: the physical floor of a worker restart.

Not a benchmark itself (run without arguments, as ``make bench`` does, it does
nothing). ``python bench/_forker.py serve <modules>`` imports the modules
(what the daemon's zygote preloads), then for each JSON line on stdin
(``{"module", "env", "cwd"}``) forks a child that becomes that worker, and
prints the child's pid. No supervisor, no restart policy, no bookkeeping:
a restart cannot beat fork + the worker's own start + its handshake.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import sys


def _child(req: dict[str, object]) -> None:
    code = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # as the zygote: the worker's output is not ours
            os.dup2(null, fd)
        os.chdir(str(req["cwd"]))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in dict(req["env"]).items()})  # type: ignore[call-overload]
        sys.argv = [str(req["module"])]
        runpy.run_module(str(req["module"]), run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    finally:
        os._exit(code)


def main() -> None:
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    print("ready", flush=True)
    for line in sys.stdin:
        while True:  # reap the workers that exited since the last request
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        req = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(req)
        print(pid, flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    del sys.argv[1]
    main()
