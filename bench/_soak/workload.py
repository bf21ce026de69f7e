"""The load that keeps the tree busy while the chaos runs, and what it was told.

- ``Feeder``: keeps a few more workflows queued than the pool runs, each on a
  new task (``subject/call task create``, then ``workflow/run``), of the three
  kinds in ``setup.workflows_yaml``; every acknowledged run is recorded.
- ``SubjectWriter``: creates and updates subjects through every subject
  backend; every acknowledged write is recorded (an unanswered one is "in
  doubt": the record may be old or new, never twice).
- ``Resolver``: the operator, mid-soak: a run blocked for a few seconds is
  resumed with ``force`` (recorded, so a re-run it authorised is not a duplicate).
- ``Stream``: ``animus daemon stream --json`` for the whole run, across daemon
  restarts (its socket reconnects); its output is compared with the log at the end.

Each talks to the control socket on its own thread with its own client, and
rides out a dead daemon by trying again.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _soak.setup import ANIMUS, POOL_SIZE, WORKFLOW_REFS, SoakEnv
from animus.bus.rpc import ControlClient
from animus.errors import AnimusError

SUBJECT_KINDS = ("task", "requirement", "sqlite.task", "md.task")


def db_rows(soak: SoakEnv, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Read ``workflow.db`` beside the daemon (WAL: a reader never blocks it)."""
    path = soak.state_root / "workflow.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, args))
    except sqlite3.OperationalError:
        return []  # the schema not there yet
    finally:
        conn.close()


class Worker(threading.Thread):
    """A thread with its own control client and a stop flag."""

    pause = 0.2

    def __init__(self, soak: SoakEnv, seed: int) -> None:
        super().__init__(daemon=True, name=type(self).__name__)
        self.soak = soak
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.client: ControlClient | None = None
        self.errors: Counter[str] = Counter()  # what went wrong, by message (the daemon down, mostly)
        self.unanswered: list[tuple[float, float, str]] = []  # (sent, gave up, method): no answer at all

    def call(self, method: str, params: dict[str, Any], timeout: float = 20) -> Any:
        if self.client is None:
            self.client = ControlClient(self.soak.endpoint("control"), timeout=timeout)
        sent = time.time()
        try:
            return self.client.call(method, params, timeout=timeout)
        except AnimusError as exc:
            if "daemon did not answer" in str(exc):  # no answer at all (the root saying a child did not is one)
                self.unanswered.append((sent, time.time(), method))
            self.client.close()  # a fresh socket after a failure, as a new CLI process would have
            self.client = None
            raise

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.step()
            except AnimusError as exc:
                self.errors[exc.one_line()[:120]] += 1
                self.stopping.wait(0.5)  # the daemon is down or restarting
            self.stopping.wait(self.pause * (0.5 + self.rng.random()))
        if self.client is not None:
            self.client.close()

    def step(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)


@dataclass
class Accepted:
    workflow_id: str
    ref: str
    task_id: str


class Feeder(Worker):
    pause = 0.3

    def __init__(self, soak: SoakEnv, seed: int, backlog: int = POOL_SIZE + 2) -> None:
        super().__init__(soak, seed)
        self.backlog = backlog
        self.accepted: list[Accepted] = []
        self.tasks: list[str] = []
        self.n = 0  # every create gets a new title, answered or not

    def step(self) -> None:
        active = db_rows(self.soak, "SELECT COUNT(*) FROM workflows WHERE status IN ('pending','running')")
        if active and active[0][0] >= self.backlog:
            return
        self.n += 1
        n = self.n
        task = self.call("subject/call", {"kind": "task", "verb": "create",
                                          "params": {"title": f"feed task {n}", "status": "ready"}})
        self.tasks.append(str(task["id"]))
        ref = self.rng.choice(WORKFLOW_REFS)
        wf = self.call("workflow/run", {"task_id": task["id"], "workflow_ref": ref})
        self.accepted.append(Accepted(str(wf["workflow_id"]), ref, str(task["id"])))


@dataclass
class Write:
    kind: str
    op: str  # create | update
    title: str
    ok: bool
    id: str | None = None


class SubjectWriter(Worker):
    pause = 0.15

    def __init__(self, soak: SoakEnv, seed: int) -> None:
        super().__init__(soak, seed)
        self.writes: list[Write] = []
        self.created: list[tuple[str, str, str]] = []  # kind, id, title: acknowledged, not yet updated
        self.n = 0

    def step(self) -> None:
        if self.created and self.rng.random() < 0.4:
            kind, sid, title = self.created.pop(self.rng.randrange(len(self.created)))
            self._write(kind, "update", f"{title} u", {"id": sid, "fields": {"title": f"{title} u"}}, sid)
            return
        self.n += 1
        kind = self.rng.choice(SUBJECT_KINDS)
        title = f"soak {kind} {self.n}"
        sid = self._write(kind, "create", title, {"title": title}, None)
        if sid is not None:
            self.created.append((kind, sid, title))

    def _write(self, kind: str, op: str, title: str, params: dict[str, Any], sid: str | None) -> str | None:
        try:
            result = self.call("subject/call", {"kind": kind, "verb": op, "params": params})
        except AnimusError:
            self.writes.append(Write(kind, op, title, False, sid))
            raise
        self.writes.append(Write(kind, op, title, True, str(result["id"])))
        return str(result["id"])


@dataclass
class Resume:
    workflow_id: str
    at: float  # when it was sent: a re-run it authorised starts after this
    outcome: str  # ok | doubt (no answer: it may have been carried out) | refused


class Resolver(Worker):
    pause = 2.0
    blocked_for = 3.0  # seconds a run stays blocked before the operator looks at it

    def __init__(self, soak: SoakEnv, seed: int) -> None:
        super().__init__(soak, seed)
        self.resumes: list[Resume] = []

    def step(self) -> None:
        rows = db_rows(self.soak, "SELECT id FROM workflows WHERE status='blocked' AND updated_at < ?",
                       (time.time() - self.blocked_for,))
        for row in rows:
            if self.stopping.is_set():
                return
            self.resume(row["id"])

    def resume(self, wf_id: str) -> None:
        sent = time.time()
        try:
            self.call("workflow/resume", {"id": wf_id, "force": True})
        except AnimusError as exc:
            unanswered = exc.exit_code == 5  # unavailable: the daemon is down, or did not answer
            self.resumes.append(Resume(wf_id, sent, "doubt" if unanswered else "refused"))
            if unanswered:
                raise
            return
        self.resumes.append(Resume(wf_id, sent, "ok"))


@dataclass
class Stream:
    """``animus daemon stream --json`` for the whole soak."""

    soak: SoakEnv
    out: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    live_since: list[float] = field(default_factory=list)

    def start(self) -> None:
        err = self.out.with_suffix(".err")
        with self.out.open("ab") as out, err.open("ab") as errf:
            self.proc = subprocess.Popen([*ANIMUS, "daemon", "stream", "--json"], cwd=self.soak.project,
                                         env=self.soak.env, stdout=out, stderr=errf)
        deadline = time.monotonic() + 60
        while b"streaming events" not in err.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon stream did not start: {err.read_text()[-1000:]}")
            time.sleep(0.05)
        self.live_since.append(time.time())

    def ensure(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.restarts += 1
            self.start()

    def finish(self, timeout: float = 30) -> int | None:
        """It ends by itself on the daemon's ``daemon_shutdown``; else SIGTERM."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            return self.proc.wait(30)
