"""Looking for a key where it must never be: its forms, and the logs of a running stack."""

from __future__ import annotations

from urllib.parse import quote

from workbench.lib.stack import Stack


def key_forms(key: str, marker: str) -> set[str]:
    """The key, cut short (a clipped message), URL-encoded, and a marker only it contains."""
    return {key, key[:-4], quote(key, safe=""), marker}


def assert_key_absent(key: str, marker: str, where: str, text: str) -> None:
    for form in key_forms(key, marker):
        assert form not in text, f"the key leaked into {where}"


def stack_logs(stack: Stack) -> dict[str, str]:
    """Every log the stack's processes wrote (daphne and the workers), by file name."""
    logs = {p.name: p.read_text(errors="replace") for p in stack.log_dir.glob("*.log")}
    assert any("worker" in name for name in logs) and "daphne.log" in logs, sorted(logs)
    return logs
