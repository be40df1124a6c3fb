"""Flows the continuation tests run, in process and in subprocesses.

Effects append a line to the file named by ``JOURNAL_TEST_EFFECTS`` (when
set), so a test in another process can see exactly which effect ran how
often. ``JOURNAL_TEST_BLOCK`` names a file: the `slow_charge` step writes
``started`` into it and then waits (up to a bound) for it to be removed,
so that a test can kill the process while the step is running.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import journal
from journal import Flow

approvals = Flow("t.approvals")


def effect(what: str) -> None:
    """Record that an effect ran (in the side-effect log, if one is set)."""
    log = os.environ.get("JOURNAL_TEST_EFFECTS")
    if log:
        with Path(log).open("a") as file:
            file.write(what + "\n")


@approvals.step(step_type="ToolNode")
def quote(order: str) -> int:
    effect(f"quote {order}")
    return 40


@approvals.step(step_type="ToolNode")
def refund(order: str, amount: int) -> str:
    effect(f"refund {order} {amount}")
    return f"refunded {amount}"


@approvals.entry
def approve_refund(order: str) -> str:
    amount = quote(order)
    try:
        note = journal.wait_for(
            "approval",
            prompt=f"refund {amount} for {order}?",
            action={"order": order, "amount": amount},
            require_approver=True,
            type_=str,
        )
    except journal.Denied as denied:
        return f"not refunded: {denied}"
    except journal.WaitTimeout:
        return "not refunded: nobody answered"
    return f"{refund(order, amount)} ({note})"


timed = Flow("t.timed")


@timed.entry
def ask_briefly(question: str) -> str:
    try:
        answer: str = journal.wait_for(
            "user_input", prompt=question, timeout=0, type_=str
        )
    except journal.WaitTimeout:
        return "timed out"
    return answer


charges = Flow("t.charges")


@charges.step(step_type="ToolNode")
def reserve(order: str) -> str:
    effect(f"reserve {order}")
    return f"r-{order}"


@charges.step(step_type="ToolNode")
def slow_charge(reservation: str) -> str:
    effect(f"charge {reservation} key={journal.step_key()}")
    block = os.environ.get("JOURNAL_TEST_BLOCK")
    if block:
        path = Path(block)
        path.write_text("started")
        deadline = time.monotonic() + 60
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    return f"charged {reservation}"


@charges.step(step_type="ToolNode")
def ship(charge: str) -> str:
    effect(f"ship {charge}")
    return f"shipped after {charge}"


@charges.entry
def charge_order(order: str) -> str:
    return ship(slow_charge(reserve(order)))
