"""Run one of `tests.continuation_flows` in a process of its own:
``python -m tests.continuation_run URL TENANT FLOW ARGUMENT`` prints the
execution's id and state (the tests then kill it, resume or recover it)."""

from __future__ import annotations

import sys

import journal
from tests import continuation_flows


def main(argv: list[str]) -> int:
    url, tenant, flow_name, argument = argv
    flows = {
        "approvals": continuation_flows.approvals,
        "charges": continuation_flows.charges,
    }
    with journal.open(url, tenant=tenant) as journal_:
        execution = flows[flow_name].run(journal_, argument)
    print(execution.id, execution.state_label, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
