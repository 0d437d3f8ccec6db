"""With --shared-rate and no --rate, a replica is not capped by the default 5/s (two replicas under
--shared-rate 20 sent 10/s); a --rate given stays a cap per replica."""

from __future__ import annotations

import pytest

from worker.queue.service import local_limiter
from worker.settings import load_settings


@pytest.mark.parametrize(("given", "cap"), [({"shared_rate": 20}, None), ({"shared_rate": 20, "rate": 5}, 5.0),
                                            ({}, 5.0), ({"rate": 8}, 8.0)])
def test_the_per_replica_cap(given, cap):
    assert local_limiter(load_settings(given)).rate == cap


def test_a_rate_from_the_environment_is_a_given_rate(monkeypatch):
    monkeypatch.setenv("SNAPRELABEL_RATE", "7")
    assert local_limiter(load_settings({"shared_rate": 20})).rate == 7.0
