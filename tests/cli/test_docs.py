"""The documentation keeps up with the code: settings, commands, pages."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from failover.config import ENV_PREFIX, SETTINGS_TABLE

from .test_entry_point import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _hook() -> ModuleType:
    path = DOCS / "_hooks" / "settings_reference.py"
    spec = importlib.util.spec_from_file_location("settings_reference", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_has_an_example_in_the_reference() -> None:
    hook = _hook()
    missing = [name for name in SETTINGS_TABLE if not hook.EXAMPLES.get(name)]
    assert missing == [], f"add examples for {missing} to docs/_hooks/settings_reference.py"


def test_the_configuration_page_renders_every_variable() -> None:
    hook = _hook()
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert hook.MARKER in page
    rendered = hook.on_page_markdown(page)
    for name in SETTINGS_TABLE:
        assert f"`{ENV_PREFIX}{name.upper()}`" in rendered


def test_every_command_is_in_the_operations_guide() -> None:
    guide = (DOCS / "operations.md").read_text(encoding="utf-8")
    for command in COMMANDS:
        assert re.search(rf"^failover {command}\b", guide, re.MULTILINE), command


def test_every_page_in_the_nav_exists() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = re.findall(r":\s+(\S+\.md)\s*$", config, re.MULTILINE)
    assert "index.md" in pages
    assert [page for page in pages if not (DOCS / page).is_file()] == []


def test_every_prometheus_family_is_in_the_observe_page() -> None:
    from failover.telemetry import PROMETHEUS
    from failover.types import field_name

    page = (DOCS / "observe.md").read_text(encoding="utf-8")
    for family in PROMETHEUS.values():
        assert f"| `{family}` |" in page, family  # the reference table
        assert f"| `{field_name(family)}`" in page, family  # the CLI and events table
