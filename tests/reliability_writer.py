"""A writer process for the reliability suite (`tests.test_reliability`).

``python -m tests.reliability_writer URL TENANT ACK_FILE COUNT EXEC_ID...``

Appends steps to the given executions in turn, each as one append of two
events (``StepStarted`` + ``StepCompleted``, so a half-written append would
show), and after each append returns writes one acknowledgement line
``EXEC_ID STEP_NAME SEQ`` to ACK_FILE (unbuffered, ``O_APPEND``). A
conflict (another writer appended first) is counted and retried with a new
step. It stops after COUNT acknowledged appends (0: never, until killed).
Exits 0, or 1 with the error on stderr.
"""

from __future__ import annotations

import os
import secrets
import sys

import journal
from journal import events as ev
from journal.application import utc_now
from journal.errors import ConflictError
from journal.ids import new_step_id


def main(argv: list[str]) -> int:
    url, tenant, ack_path, count_text, *execution_ids = argv
    count = int(count_text)
    me = secrets.token_hex(4)
    ack = os.open(ack_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    acknowledged = conflicts = 0
    with journal.open(url, tenant=tenant) as journal_:
        handles = [journal_.handle(execution_id) for execution_id in execution_ids]
        turn = 0
        while count == 0 or acknowledged < count:
            handle = handles[turn % len(handles)]
            turn += 1
            name = f"{me}-{turn}"
            step_id = new_step_id()
            try:
                handle.record(
                    ev.StepStarted(
                        at=utc_now(), step_id=step_id, name=name, step_type="ToolNode"
                    ),
                    ev.StepCompleted(at=utc_now(), step_id=step_id),
                )
            except ConflictError:
                conflicts += 1
                continue
            line = f"{handle.id} {name} {handle.state.version}\n"
            os.write(ack, line.encode())
            acknowledged += 1
    os.close(ack)
    print(f"{acknowledged} {conflicts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
