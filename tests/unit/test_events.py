"""Events as data: ``to_dict()`` speaks the metrics' vocabulary, and the log carries it."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from failover.events import (
    BackendDemoted,
    BackendRecovered,
    BreakerStateChanged,
    ClockSkewDetected,
    Event,
    FailedOver,
    HedgeFired,
    LoggingHook,
    RetryScheduled,
)
from failover.telemetry import BREAKER_STATE, HEALTH_SCORE, PROMETHEUS
from failover.types import BackendHealth, field_name

EVENTS = [
    BreakerStateChanged("aws", "closed", "open"),
    BackendDemoted("aws", 0.25),
    BackendRecovered("aws", 0.75),
    FailedOver("aws", "get", "k", "BackendUnavailable: down"),
    RetryScheduled("aws", "put", "k", 2, 0.125, "ThrottledError: slow down"),
    HedgeFired("aws", "get", "k", "gcp", 0.05),
    ClockSkewDetected("aws", "k", "0001.000001.ab", 42.0),
]


def test_every_event_class_has_the_base_keys() -> None:
    for kind in Event.__subclasses__():
        names = [f.name for f in dataclasses.fields(kind)]
        assert names[0] == "backend"
        renamed = [kind._keys.get(n, n) for n in names]
        assert len(set(renamed)) == len(renamed), kind
        assert "event" not in renamed


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_to_dict_names_the_event_and_its_backend_and_is_json(event: Event) -> None:
    data = event.to_dict()
    assert list(data)[:2] == ["event", "backend"]
    assert data["event"] == type(event).__name__
    assert data["backend"] == "aws"
    assert json.loads(json.dumps(data)) == data


def test_quantities_take_the_metric_names() -> None:
    assert BreakerStateChanged("aws", "closed", "open").to_dict() == {
        "event": "BreakerStateChanged",
        "backend": "aws",
        "previous_breaker_state": "closed",
        "breaker_state": "open",
    }
    assert field_name(PROMETHEUS[BREAKER_STATE]) == "breaker_state"
    assert BackendDemoted("aws", 0.25).to_dict()["health_score"] == 0.25
    assert BackendRecovered("aws", 0.75).to_dict()["health_score"] == 0.75
    assert field_name(PROMETHEUS[HEALTH_SCORE]) == "health_score"
    # the other attributes keep their names
    assert RetryScheduled("aws", "put", "k", 2, 0.125, "e").to_dict() == {
        "event": "RetryScheduled",
        "backend": "aws",
        "operation": "put",
        "key": "k",
        "attempt": 2,
        "delay_seconds": 0.125,
        "error": "e",
    }
    # and the old attributes are still there
    changed = BreakerStateChanged("aws", "closed", "open")
    assert (changed.old, changed.new) == ("closed", "open")


def test_events_and_backend_health_share_keys() -> None:
    health = BackendHealth("aws", "open", 0.5, 1500.0, 0.25, 3)
    assert health.to_dict() == {
        "backend": "aws",
        "breaker_state": "open",
        "health_score": 0.5,
        "latency_seconds": 1.5,
        "error_ratio": 0.25,
        "repairs_pending": 3,
    }
    metric_keys = {field_name(family) for family in PROMETHEUS.values()}
    assert set(health.to_dict()) - {"backend"} <= metric_keys
    for event in EVENTS:
        renamed = set(event.to_dict()) - {f.name for f in dataclasses.fields(event)}
        assert renamed - {"event", "previous_breaker_state"} <= metric_keys


def test_field_name_rule() -> None:
    assert {family: field_name(family) for family in PROMETHEUS.values()} == {
        "failover_operation_duration_seconds": "operation_duration_seconds",
        "failover_backend_requests_total": "requests",
        "failover_breaker_state": "breaker_state",
        "failover_backend_health_score": "health_score",
        "failover_backend_latency_seconds": "latency_seconds",
        "failover_backend_error_ratio": "error_ratio",
        "failover_repairs_pending": "repairs_pending",
        "failover_hints_outstanding": "hints_outstanding",
        "failover_hints_oldest_age_seconds": "hints_oldest_age_seconds",
    }


def test_the_logging_hook_attaches_the_dict(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="failover")
    hook = LoggingHook()
    for event in EVENTS:
        hook(event)
    assert [r.failover for r in caplog.records] == [e.to_dict() for e in EVENTS]  # type: ignore[attr-defined]
    assert caplog.records[0].levelno == logging.WARNING
    assert caplog.records[0].getMessage() == "breaker aws: closed -> open"


def test_the_logging_hook_skips_disabled_levels(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="failover")
    LoggingHook()(HedgeFired("aws", "get", "k", "gcp", 0.05))
    assert caplog.records == []
