"""The fleet history checker: it must flag every broken rule, and only those.

Histories are built by hand, times in milliseconds. Each illegal history is one a
correct replicated store could never produce; each legal one is a history a correct
store can produce (concurrency, unknown outcomes, killed processes), so the checker is
shown to fail when it should and to stay quiet when it should.
"""

from __future__ import annotations

import inspect
import itertools
import json
from pathlib import Path

import pytest

from failover.testing import history as history_module
from failover.testing.history import (
    HistoryFormatError,
    HistoryLog,
    Operation,
    Rule,
    Violation,
    check,
    read_history,
    read_log,
)

KEY = "fleet/k0"
MS = 1_000_000
_ids = itertools.count(1)


def op(
    kind: str,
    start_ms: float,
    end_ms: float | None,
    value: str | None = None,
    *,
    outcome: str | None = None,
    process: str = "p1",
    key: str = KEY,
) -> Operation:
    """An operation; outcome ``ok`` if it completed, else ``unknown``."""
    return Operation(
        op_id=f"op{next(_ids)}",
        process=process,
        kind=kind,  # type: ignore[arg-type]
        key=key,
        value=value,
        invoked_ns=int(start_ms * MS),
        completed_ns=None if end_ms is None else int(end_ms * MS),
        outcome=outcome or ("ok" if end_ms is not None else "unknown"),  # type: ignore[arg-type]
    )


def put(value: str, start: float, end: float | None, **kw: object) -> Operation:
    return op("put", start, end, value, **kw)  # type: ignore[arg-type]


def delete(start: float, end: float | None, **kw: object) -> Operation:
    return op("delete", start, end, **kw)  # type: ignore[arg-type]


def get(value: str | None, start: float, end: float, **kw: object) -> Operation:
    return op("get", start, end, value, **kw)  # type: ignore[arg-type]


def everywhere(state: str | None, key: str = KEY) -> dict[str, dict[str, str | None]]:
    return {key: {"aws": state, "azure": state, "gcp": state}}


def rules(violations: list[Violation]) -> list[Rule]:
    return [v.rule for v in violations]


# -- histories that must be flagged ---------------------------------------------------


def test_phantom_read_of_a_value_nobody_wrote() -> None:
    history = [put("a", 0, 10), get("zzz", 20, 30)]
    found = check(history, everywhere("a"))
    assert rules(found) == [Rule.PHANTOM_READ]
    assert "no put wrote" in str(found[0])


def test_phantom_read_from_the_future() -> None:
    # The get completed before the put of its value was even invoked.
    history = [get("a", 0, 10), put("a", 20, 30)]
    assert rules(check(history, everywhere("a"))) == [Rule.PHANTOM_READ]


def test_reading_a_put_recorded_as_certainly_failed_is_a_phantom() -> None:
    history = [put("a", 0, 10, outcome="fail"), get("a", 20, 30)]
    found = check(history)
    assert rules(found) == [Rule.PHANTOM_READ]
    assert "certainly not applied" in found[0].message


def test_final_value_nobody_wrote_is_a_phantom() -> None:
    found = check([put("a", 0, 10)], everywhere("ghost"))
    assert Rule.PHANTOM_READ in rules(found)


def test_untouched_key_must_stay_absent() -> None:
    assert check([], everywhere(None, "fleet/k9")) == []
    assert rules(check([], everywhere("x", "fleet/k9"))) == [Rule.PHANTOM_READ]


def test_lost_acknowledged_write() -> None:
    # Acknowledged, never deleted, yet absent at the end.
    history = [put("a", 0, 10)]
    found = check(history, everywhere(None))
    assert rules(found) == [Rule.LOST_WRITE]
    assert "never deleted" in found[0].message


def test_acknowledged_overwrite_lost_in_the_final_state() -> None:
    history = [put("a", 0, 10), put("b", 20, 30, process="p2")]
    found = check(history, everywhere("a"))
    assert rules(found) == [Rule.LOST_WRITE]
    assert "put b" in found[0].message


def test_resurrected_delete_in_the_final_state() -> None:
    # The delete was acknowledged after the put completed: the value must not return.
    history = [put("a", 0, 10), delete(20, 30, process="p2")]
    found = check(history, everywhere("a"))
    assert rules(found) == [Rule.LOST_WRITE]
    assert "delete" in found[0].message


def test_resurrected_delete_seen_by_a_read() -> None:
    history = [put("a", 0, 10), delete(20, 30, process="p2"), get("a", 40, 50, process="p3")]
    found = check(history, everywhere(None))
    assert rules(found) == [Rule.STALE_READ]
    assert "resurrected" in found[0].message
    assert [o.kind for o in found[0].ops] == ["get", "put", "delete"]


def test_stale_read_after_an_acknowledged_later_write() -> None:
    history = [put("a", 0, 10), put("b", 20, 30, process="p2"), get("a", 40, 50, process="p3")]
    found = check(history, everywhere("b"))
    assert rules(found) == [Rule.STALE_READ]
    assert "older than an acknowledged put" in found[0].message


def test_not_found_after_an_acknowledged_put() -> None:
    history = [put("a", 0, 10), get(None, 20, 30, process="p2")]
    found = check(history, everywhere("a"))
    assert rules(found) == [Rule.STALE_READ]
    assert "found nothing" in found[0].message


def test_not_found_explained_only_by_a_delete_before_the_put_is_flagged() -> None:
    history = [delete(0, 5), put("a", 10, 20), get(None, 30, 40, process="p2")]
    assert rules(check(history)) == [Rule.STALE_READ]


def test_not_found_explained_by_a_delete_overwritten_by_a_later_acknowledged_put() -> None:
    # The delete is concurrent with the first put, but a second acknowledged put lies
    # strictly between the delete and the read: absence cannot be read any more.
    history = [
        put("a", 0, 20),
        delete(10, 30, process="p2"),
        put("b", 40, 50),
        get(None, 60, 70, process="p3"),
    ]
    assert rules(check(history)) == [Rule.STALE_READ]


def test_absent_at_the_end_although_every_delete_precedes_an_acknowledged_put() -> None:
    history = [put("a", 0, 10), delete(20, 30), put("b", 40, 50, outcome="ok")]
    found = check(history, everywhere(None))
    assert rules(found) == [Rule.LOST_WRITE]
    assert "every delete is strictly before" in found[0].message


def test_divergent_replicas() -> None:
    history = [put("a", 0, 10), put("b", 5, 15, process="p2")]
    found = check(history, {KEY: {"aws": "a", "azure": "b", "gcp": "b"}})
    # Each state alone is legal (the puts were concurrent): only convergence fails.
    assert rules(found) == [Rule.DIVERGENCE]
    assert "aws=a" in str(found[0])
    assert "azure=b" in str(found[0])


def test_divergent_replicas_holding_a_lost_write_report_both() -> None:
    history = [put("a", 0, 10), delete(20, 30)]
    found = check(history, {KEY: {"aws": "a", "azure": None, "gcp": None}})
    assert sorted(rules(found)) == sorted([Rule.DIVERGENCE, Rule.LOST_WRITE])
    lost = next(v for v in found if v.rule is Rule.LOST_WRITE)
    assert "aws holds value a" in lost.message


def test_violation_names_the_key_the_rule_and_the_operations() -> None:
    history = [put("a", 0, 10), put("b", 20, 30, process="p2"), get("a", 40, 50, process="p3")]
    (violation,) = check(history)
    text = str(violation)
    assert text.startswith(f"stale-read on {KEY!r}: ")
    for involved in violation.ops:
        assert involved.op_id in text
    assert "by p2" in text
    assert "0.020s..0.030s" in text  # times relative to the first invocation


# -- histories that are legal ---------------------------------------------------------


@pytest.mark.parametrize("winner", ["a", "b"])
def test_concurrent_puts_either_may_win(winner: str) -> None:
    history = [
        put("a", 0, 20),
        put("b", 10, 30, process="p2"),
        get("a", 15, 25, process="p3"),  # overlaps both: may see either
        get(winner, 40, 50, process="p3"),
    ]
    assert check(history, everywhere(winner)) == []


@pytest.mark.parametrize("landed", [True, False])
def test_unknown_outcome_put_may_or_may_not_have_landed(landed: bool) -> None:
    history = [
        put("a", 0, 10),
        put("b", 20, 30, outcome="unknown", process="p2"),  # QuorumNotReached
        get("b" if landed else "a", 40, 50, process="p3"),
    ]
    assert check(history, everywhere("b" if landed else "a")) == []


@pytest.mark.parametrize("landed", [True, False])
def test_put_of_a_killed_process_may_land_at_any_time(landed: bool) -> None:
    history = [
        put("a", 0, 10),
        put("k", 20, None, process="killed"),  # no completion: SIGKILL mid-put
        put("b", 30, 40, process="p2"),
        get("k" if landed else "b", 50, 60, process="p3"),
    ]
    # Even after the later acknowledged put: the killed put may take effect last.
    assert check(history, everywhere("k" if landed else "b")) == []


def test_superseded_put_is_treated_like_an_unknown_one() -> None:
    history = [put("a", 0, 10), put("s", 20, 30, outcome="superseded"), get("s", 40, 50)]
    assert check(history, everywhere("s")) == []
    assert check(history, everywhere("a")) == []


def test_delete_of_a_killed_process_may_explain_absence() -> None:
    history = [put("a", 0, 10), delete(20, None, process="killed"), get(None, 30, 40)]
    assert check(history, everywhere(None)) == []


def test_not_found_while_a_delete_is_in_flight() -> None:
    history = [put("a", 0, 10), delete(20, 40, process="p2"), get(None, 25, 30, process="p3")]
    assert check(history, everywhere(None)) == []


def test_value_read_while_a_delete_is_in_flight() -> None:
    history = [put("a", 0, 10), delete(20, 40, process="p2"), get("a", 25, 30, process="p3")]
    assert check(history, everywhere(None)) == []


def test_not_found_before_any_acknowledged_put() -> None:
    history = [get(None, 0, 5), put("a", 3, 20), get(None, 10, 15, process="p2")]
    assert check(history, everywhere("a")) == []


def test_failed_or_unknown_reads_constrain_nothing() -> None:
    history = [
        put("a", 0, 10),
        get(None, 20, 30, outcome="unknown"),
        op("get", 40, None),  # killed mid-read
    ]
    assert check(history, everywhere("a")) == []


def test_acknowledged_delete_then_absent() -> None:
    history = [put("a", 0, 10), delete(20, 30), get(None, 40, 50)]
    assert check(history, everywhere(None)) == []


def test_keys_are_independent() -> None:
    history = [put("a", 0, 10, key="k1"), put("b", 20, 30, key="k2"), get("a", 40, 50, key="k1")]
    finals = {**everywhere("a", "k1"), **everywhere("b", "k2")}
    assert check(history, finals) == []


def test_malformed_histories_are_refused() -> None:
    a = put("a", 0, 10)
    with pytest.raises(HistoryFormatError, match="twice"):
        check([a, a])
    with pytest.raises(HistoryFormatError, match="put twice"):
        check([put("a", 0, 10), put("a", 20, 30)])
    with pytest.raises(HistoryFormatError, match="never completed"):
        check([put("a", 0, None, outcome="ok")])


# -- the log format -------------------------------------------------------------------


def test_log_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "p1.jsonl"
    with HistoryLog(path, process="p1") as log:
        log.event("start", seed=7)
        first = log.invoke("put", KEY, value="p1:1")
        log.complete(first, "ok")
        second = log.invoke("get", KEY)
        log.complete(second, "ok", value="p1:1")
        third = log.invoke("delete", KEY)
        log.complete(third, "unknown", error="QuorumNotReached: ...")
        log.invoke("put", KEY, value="p1:4")  # killed before it completed
    ops = read_log(path)
    assert [(o.kind, o.value, o.outcome) for o in ops] == [
        ("put", "p1:1", "ok"),
        ("get", "p1:1", "ok"),
        ("delete", None, "unknown"),
        ("put", "p1:4", "unknown"),
    ]
    assert ops[2].error == "QuorumNotReached: ..."
    assert ops[3].completed_ns is None
    assert all(o.completed_ns is None or o.invoked_ns <= o.completed_ns for o in ops)
    assert check(ops, everywhere("p1:4")) == []


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "p1.jsonl"
    with HistoryLog(path, process="p1") as log:
        done = log.invoke("put", KEY, value="v1")
        log.complete(done, "ok")
        log.invoke("put", KEY, value="v2")
    whole = path.read_bytes()
    complete_line = json.dumps(
        {"event": "complete", "op": "p1.2", "outcome": "ok", "value": None, "time_ns": 1}
    ).encode()
    path.write_bytes(whole + complete_line[:25])  # SIGKILL in the middle of a write
    ops = read_log(path)
    assert [(o.value, o.outcome, o.completed_ns is None) for o in ops] == [
        ("v1", "ok", False),
        ("v2", "unknown", True),
    ]


def test_torn_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p1.jsonl"
    path.write_text('{"event": "invoke", "op": "x"\n{"event": "start"}\n')
    with pytest.raises(HistoryFormatError, match=":1: not a JSON line"):
        read_log(path)


def test_completion_without_invocation_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p1.jsonl"
    path.write_text(json.dumps({"event": "complete", "op": "nope", "outcome": "ok"}) + "\n")
    with pytest.raises(HistoryFormatError, match="without an invocation"):
        read_log(path)


def test_history_of_several_processes(tmp_path: Path) -> None:
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    with HistoryLog(paths[0], process="a") as a, HistoryLog(paths[1], process="b") as b:
        first = a.invoke("put", KEY, value="a.1")
        a.complete(first, "ok")
        second = b.invoke("delete", KEY)
        b.complete(second, "ok")
        third = a.invoke("get", KEY)
        a.complete(third, "ok", value="a.1")  # read the put after the acknowledged delete
    ops = read_history(paths)
    assert [o.process for o in ops] == ["a", "b", "a"]
    found = check(ops, everywhere(None))
    assert rules(found) == [Rule.STALE_READ]


def test_exports_are_documented() -> None:
    assert history_module.__all__ == sorted(
        history_module.__all__, key=lambda n: (not n.isupper(), n)
    )
    for name in history_module.__all__:
        exported = getattr(history_module, name)
        if inspect.isclass(exported) or inspect.isfunction(exported):
            assert exported.__doc__, name
