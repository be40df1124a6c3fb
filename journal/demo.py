"""A bundled demo: a refund flow with a child flow, for ``journal demo``.

Load it with ``--flows journal.demo``. ``demo.refund`` shows steps of several
types (a tool, an LLM call, a pure function), a flaky payment gateway that
fails once with `ConnectionError` and succeeds on retry, a child execution
(``demo.notify``) and the recorded helpers `journal.now` and `journal.uuid4`.
Nothing here touches the network: the "services" are deterministic fakes.
"""

from __future__ import annotations

import zlib
from datetime import datetime

import msgspec

from journal.flow import Flow, now, uuid4
from journal.model import RetryPolicy, StepType


class Order(msgspec.Struct, frozen=True):
    """An order as the (fake) order service returns it."""

    order_id: str
    customer: str
    amount_cents: int
    blocked: bool = False


class Assessment(msgspec.Struct, frozen=True):
    """What the (fake) LLM concluded about a refund request."""

    approve: bool
    share_percent: int
    rationale: str


class Decision(msgspec.Struct, frozen=True):
    """The refund flow's result."""

    order_id: str
    approved: bool
    refund_cents: int
    refund_id: str | None
    notification: str | None
    decided_at: datetime


ORDERS = {
    "ord_1001": Order("ord_1001", "ada@example.com", 4_250),
    "ord_1002": Order("ord_1002", "alan@example.com", 12_000),
    "ord_1003": Order("ord_1003", "grace@example.com", 990, blocked=True),
}

#: Payment-gateway calls seen per idempotency key: the first call of each key
#: times out, so every run retries once, whatever ran before in the process.
_gateway_calls: dict[str, int] = {}

notify = Flow("demo.notify")
refund = Flow("demo.refund", uses=[notify])


@notify.step(step_type=StepType.TOOL_NODE)
def send_email(to: str, subject: str) -> str:
    """Pretend to send an email; returns a message id."""
    return f"msg-{zlib.crc32(f'{to}|{subject}'.encode()):08x}"


@notify.entry
def notify_customer(to: str, subject: str) -> str:
    return send_email(to, subject)


@refund.step(step_type=StepType.TOOL_NODE)
def fetch_order(order_id: str) -> Order:
    """Look the order up; a blocked account is a policy violation (fatal)."""
    order = ORDERS.get(order_id) or Order(order_id, "unknown@example.com", 0)
    if order.blocked:
        raise PermissionError(f"account of {order.customer} is blocked")
    return order


@refund.step(step_type=StepType.LLM_NODE)
def assess_request(order: Order, reason: str) -> Assessment:
    """A stand-in for an LLM call: keyword rules, deterministic."""
    damaged = any(word in reason.lower() for word in ("damaged", "broken"))
    if damaged:
        return Assessment(True, 100, "item arrived damaged: full refund")
    return Assessment(False, 0, "no defect reported: refund declined")


@refund.step(step_type=StepType.FUNCTION_NODE, pure=True)
def refund_amount(order: Order, assessment: Assessment) -> int:
    """Pure arithmetic: re-run and compared on replay."""
    return order.amount_cents * assessment.share_percent // 100


@refund.step(
    step_type=StepType.TOOL_NODE, retry=RetryPolicy.retrying(2, base_delay_ms=0)
)
def issue_refund(order_id: str, amount_cents: int, idempotency_key: str) -> str:
    """The flaky payment gateway: the first call per key times out."""
    calls = _gateway_calls.get(idempotency_key, 0) + 1
    _gateway_calls[idempotency_key] = calls
    if calls == 1:
        raise ConnectionError("payment gateway timed out")
    return f"re_{idempotency_key[:8]}"


@refund.entry
def handle_refund(order_id: str, reason: str) -> Decision:
    order = fetch_order(order_id)
    assessment = assess_request(order, reason)
    amount = refund_amount(order, assessment)
    refund_id = notification = None
    if assessment.approve:
        refund_id = issue_refund(order_id, amount, str(uuid4()))
        notification = notify.run_child(
            order.customer, f"Refund {refund_id} of {amount / 100:.2f} issued"
        )
    return Decision(
        order_id=order_id,
        approved=assessment.approve,
        refund_cents=amount,
        refund_id=refund_id,
        notification=notification,
        decided_at=now(),
    )


#: What ``journal demo`` records: (order id, reason) for each run.
DEMO_REQUESTS = (
    ("ord_1001", "The mug arrived damaged"),
    ("ord_1002", "I changed my mind"),
    ("ord_1003", "Broken on arrival"),
)
