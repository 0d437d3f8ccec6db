"""`--rate` in a quota's units (flags, variables, config files; shown as written), and the quota a
429's body states, on the real message shapes."""

from __future__ import annotations

import json

import pytest

from helpers import PROJECT, run_cli, write_jobs
from worker.api.errors import describe_error, stated_quota
from worker.quota import Quota, Rate
from worker.settings import ConfigError, load_settings

HUAWEI = ('{"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached: '
          'policy user over ratelimit,limit:%s,time:%s", "request_id": "0a1b2c"}')


@pytest.mark.parametrize("text, per_second, window", [
    ("10", 10, 1), ("10/s", 10, 1), ("600/min", 10, 60), ("36000/h", 10, 3600),
    ("240/20s", 12, 20), (" 600 / 1 minute ", 10, 60), ("0.5/s", 0.5, 1), ("0", 0, 1),
])
def test_rates_read_as_quotas_are_written(text, per_second, window):
    rate = Rate.parse(text)
    assert (float(rate), rate.window, str(rate)) == (per_second, window, " ".join(text.split()))


@pytest.mark.parametrize("value", ["fast", "10/", "10/20", "-1", "inf", "nan", "10/0s", "1/fortnight",
                                   "5/s/s", "1e9"])
def test_a_bad_rate_is_one_clear_line(value):
    with pytest.raises(ConfigError) as err:
        load_settings({"rate": value})
    assert str(err.value).startswith("setting rate: must be a number of requests per second (10), "
                                     "or per window (10/s, 600/min")
    assert "\n" not in str(err.value)


def test_a_rate_in_units_from_a_variable_a_file_and_a_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("SNAPRELABEL_RATE", "600/min")
    assert float(load_settings({}).rate) == 10.0
    monkeypatch.delenv("SNAPRELABEL_RATE")
    config = tmp_path / "c.toml"
    config.write_text('rate = "36000/h"\nshared_rate = "1200/min"\n')
    settings = load_settings({}, str(config))
    assert (float(settings.rate), float(settings.shared_rate)) == (10.0, 20.0)
    assert settings.public()["rate"] == "36000/h" and settings.public()["shared_rate"] == "1200/min"
    assert load_settings({"rate": 12.5}).public()["rate"] == 12.5  # a bare number stays one


def test_the_manifest_shows_the_rate_as_written(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.csv", {"3f1a2b4c-0000-4000-8000-000000000001": "x"})
    report = tmp_path / "r.csv"
    done = run_cli("run", str(jobs), "--rate", "600/min", "--dry-run", "--project-id", PROJECT,
                   "--report", str(report))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "r.csv.manifest.json").read_text())
    assert manifest["settings"]["rate"] == "600/min"
    done = run_cli("run", str(jobs), "--rate", "600/fortnight", "--dry-run")
    assert done.returncode == 2 and "argument --rate: '600/fortnight' is not a rate" in done.stderr


@pytest.mark.parametrize("limit, time, quota", [
    ("600", "1 minute", Quota(600, 60)), ("10", "1 second", Quota(10, 1)),
    ("240", "20 second", Quota(240, 20)), ("36000", "1 hour", Quota(36000, 3600)),
    ("0", "1 second", None), ("5", "0 second", None), ("-5", "1 second", None),
    ("abc", "1 minute", None), ("5", "1 fortnight", None),
    ("99999999999999999999", "1 second", Quota(1_000_000, 1)),  # clamped: a ceiling either way
])
def test_the_quota_a_huawei_429_states(limit, time, quota):
    error = describe_error(429, (HUAWEI % (limit, time)).encode())
    assert error.code == "APIGW.0308" and error.quota == quota


def test_other_shapes_of_a_stated_quota_and_none():
    assert stated_quota('Only 10 PUT request(s) can be made to "*" every minute.') == Quota(10, 60)
    assert stated_quota("rate limit exceeded: 100 requests per second") == Quota(100, 1)
    assert describe_error(429, b'{"error_code": "APIGW.0308", "error_msg": "throttled"}').quota is None
    assert describe_error(429, b"<html>Too Many Requests</html>").quota is None
    # Only a throttling answer states a quota.
    assert describe_error(400, (HUAWEI % ("600", "1 minute")).encode()).quota is None
