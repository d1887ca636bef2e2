"""A second process that reads and prepares a customer file while the job's process writes.

Preparing a row (normalisation, Pydantic validation, blind indexes, search terms) costs about as
much CPU as writing it; in one process the two take turns. Here a child process reads the file
from the job's checkpoint and sends prepared batches (plain values, ``marshal``) through a pipe;
the job's process matches and writes them, in order, one unit of work per batch as before.

Nothing the child does touches the database, so a crash of either side loses nothing: the
checkpoint is still the last committed batch. The pipe holds about one batch: the child is at
most one batch ahead and memory stays flat. The child dies with its parent (``PR_SET_PDEATHSIG``
on Linux, and a write to a pipe nobody reads fails), so a ``kill -9`` of the job leaves no
orphan behind.

The child is ``python -m rapport.ingest.workers`` (not multiprocessing: that would import the
parent's ``__main__`` again, and forking a server's threads can copy held locks).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import marshal
import os
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rapport.ingest.readers import ReadError

_PR_SET_PDEATHSIG = 1
_FRAME = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    last_line: int
    rows: int
    data: Any  # PreparedCustomers.packed()


class WorkerFailed(RuntimeError):
    """The preparing process failed or vanished without finishing the file."""


def _send(out: IO[bytes], message: tuple[Any, ...]) -> None:
    data = marshal.dumps(message)
    out.write(_FRAME.pack(len(data)))
    out.write(data)
    out.flush()


def _receive(source: IO[bytes]) -> tuple[Any, ...] | None:
    head = source.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = source.read(size)
    if len(data) < size:
        return None
    # Written by our own child process over its stdout pipe, never by anyone else.
    message: tuple[Any, ...] = marshal.loads(data)  # noqa: S302
    return message


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def child_main() -> None:
    """The child: its task as one JSON line on stdin, prepared batches as frames on stdout."""
    task = json.loads(sys.stdin.readline())
    _die_with_parent(task["parent"])
    from rapport.exports.writers import no_cycle_collection
    from rapport.ingest.jobs import batches
    from rapport.ingest.readers import read_rows
    from rapport.ingest.service import CustomerPreparer, prepare_customers
    from rapport.security import crypto

    crypto.use_blind_index_key(bytes.fromhex(task["index_key"]))
    out = sys.stdout.buffer
    preparer = CustomerPreparer(task["mapping"], day_first=task["day_first"], region=task["region"])
    try:
        rows = (r for r in read_rows(task["path"]) if r.line > task["after_line"])
        for batch in batches(rows, task["batch_size"]):
            with no_cycle_collection():
                prepared = prepare_customers(preparer, batch, crypto.blind_index)
            _send(out, ("batch", batch[-1].line, len(batch), prepared.packed()))
        _send(out, ("end",))
    except ReadError as exc:
        _send(out, ("read_error", exc.path, exc.line, exc.reason))
    except (BrokenPipeError, ConnectionResetError):
        os._exit(0)  # the job stopped reading (cancelled, stopped, or its process is gone)
    except Exception as exc:  # reported to the job, which fails with it
        with contextlib.suppress(OSError):
            _send(out, ("error", f"{type(exc).__name__}: {exc}"))


@contextlib.contextmanager
def prepared_batches(
    path: Path,
    *,
    after_line: int,
    batch_size: int,
    mapping: dict[str, str | None],
    day_first: bool,
    region: str,
    index_key: bytes,
) -> Iterator[Iterator[PreparedBatch]]:
    """The batches of ``path`` after ``after_line``, prepared in a child process, in file order.

    Leaving the block (done, stopped early or failed) kills the child if it still runs."""
    # The child's errors go to a file read when it fails: a pipe nobody reads while it works
    # could fill up and stop it.
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the block ends
    process = subprocess.Popen(
        [sys.executable, "-m", "rapport.ingest.workers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
    )
    assert process.stdin is not None and process.stdout is not None
    task = {
        "parent": os.getpid(),
        "path": str(path),
        "after_line": after_line,
        "batch_size": batch_size,
        "mapping": mapping,
        "day_first": day_first,
        "region": region,
        # The derived blind-index key only, over the child's own stdin: it never sees the master key.
        "index_key": index_key.hex(),
    }
    process.stdin.write(json.dumps(task).encode() + b"\n")
    process.stdin.close()
    source = process.stdout

    def stream() -> Iterator[PreparedBatch]:
        while True:
            message = _receive(source)
            if message is None:
                process.wait(timeout=10)
                errors.seek(0)
                error = errors.read().decode(errors="replace")[-2000:]
                raise WorkerFailed(
                    f"the preparing process ended without finishing the file (exit code "
                    f"{process.returncode}){': ' + error.strip() if error.strip() else ''}"
                )
            match message[0]:
                case "batch":
                    yield PreparedBatch(message[1], message[2], message[3])
                case "end":
                    return
                case "read_error":
                    raise ReadError(message[1], message[2], message[3])
                case _:
                    raise WorkerFailed(str(message[1]))

    try:
        yield stream()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        source.close()
        errors.close()


if __name__ == "__main__":
    child_main()
