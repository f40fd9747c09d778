"""mkdocs hook: the ``FAILOVER_*`` reference table, rendered from ``SETTINGS_TABLE``.

``failover.config.SETTINGS_TABLE`` is the one place that knows every setting (its
parser, accepted values, default and meaning). This hook replaces the marker below in
any page with a table built from it, so the documentation cannot drift from the code.
Only the examples live here; ``tests/cli/test_docs.py`` checks that every setting has
one.
"""

from __future__ import annotations

from typing import Any

from failover.config import ENV_PREFIX, SETTINGS_TABLE

MARKER = "<!-- failover:settings-table -->"

#: One realistic value per setting, as it would be written in the environment.
EXAMPLES: dict[str, str] = {
    "backends": "s3://acme-data?region=eu-west-1,az://acme-data,gs://acme-data",
    "write_policy": "quorum",
    "write_quorum": "2",
    "read_policy": "hedged",
    "hedge_delay_ms": "50",
    "timeout_seconds": "2.5",
    "deadline_seconds": "10",
    "retry_attempts": "2",
    "breaker_fail_max": "3",
    "breaker_reset_seconds": "15",
    "breaker_storage": "redis://:PASSWORD@cache.internal:6379/0?namespace=shop",
    "journal": "/var/lib/myapp/failover/journal.sqlite",
    "repair_interval_seconds": "30",
    "max_clock_skew_seconds": "10",
    "tombstone_grace_seconds": "604800",
    "encryption_key": "k2:BASE64KEY…,k1:BASE64KEY…",
    "redundancy": "erasure",
    "ec_k": "2",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The Markdown table: variable, meaning, default, accepted values, example."""
    lines = [
        "| variable | meaning | default | accepted values | example |",
        "|---|---|---|---|---|",
    ]
    for name, spec in SETTINGS_TABLE.items():
        example = EXAMPLES.get(name, "")
        lines.append(
            f"| `{ENV_PREFIX}{name.upper()}` | {_cell(spec.meaning)} "
            f"| {_cell(spec.default_doc)} | {_cell(spec.accepted)} "
            f"| {f'`{example}`' if example else '—'} |"
        )
    return "\n".join(lines)


def on_page_markdown(markdown: str, **_kwargs: Any) -> str:
    """Replace the marker with the table (mkdocs calls this for every page)."""
    return markdown.replace(MARKER, render()) if MARKER in markdown else markdown
