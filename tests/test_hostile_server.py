"""Whole jobs against a server that misbehaves on purpose (tests/hostile_server.py): redirects,
answers about something else than was asked, bodies too big or too slow, absurd headers and
waits, refusals that echo secrets. What a user sees: report rows, exit codes, stderr; what the
servers received; how much memory the CLI took."""

from __future__ import annotations

import base64
import csv
import json
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hostile_server import QUERY_SECRET, HostileServer, other_ids

from helpers import FAST, PROJECT, ROOT, TOKEN, read_report, run_cli, write_jobs
from worker.runner import JobSpec, run_job
from worker.settings import ConfigError, load_settings
from worker.sources import InputSpec

IDS = other_ids(3)
PASSWORD = 'pa"ss/wörd+&=% 1\\x'  # every character some encoding changes
USER = "alice"
SECURITY_TOKEN = "hostile-security-token-31f0"
SECRET_KEY = "hostile-secret-key-77aa"
CREDENTIALS = {
    "token": {"token": TOKEN},
    "aksk": {"access_key": "HOSTILEAK0001", "secret_key": SECRET_KEY, "security_token": SECURITY_TOKEN},
    "password": {"username": USER, "password": PASSWORD, "user_domain_name": "Lab"},
}


def settings_for(server: HostileServer, method: str = "token", **overrides):
    values = {"endpoint": server.url, "project_id": PROJECT, "rate": 0, "concurrency": 4,
              "max_attempts": 3, **FAST, **CREDENTIALS[method]}
    if method == "password":
        values["auth_url"] = f"{server.url}/v3"
    values.update(overrides)
    return load_settings(values)


def write_rows(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("snapshot_id", "name", "description"), *rows])
    return path


async def run(server: HostileServer, tmp_path: Path, method: str = "token", ids=IDS, **overrides):
    jobs = write_rows(tmp_path / "jobs.csv", [(sid, f"new-{i}", f"about {i}") for i, sid in enumerate(ids)])
    report = tmp_path / "report.csv"
    result = await run_job(settings_for(server, method, **overrides),
                           JobSpec(InputSpec(str(jobs)), str(report)), on_terminal=False)
    return result, read_report(report)


def outcomes(rows):
    return {(r["outcome"], r["error_code"]) for r in rows}


# -- 1. redirects are never followed, and no credential reaches another origin ------------------

@pytest.fixture
def recorder():
    """The other origin: it records every request it gets (none, if all is well)."""
    with HostileServer() as other:
        yield other


@pytest.mark.parametrize("method", ["token", "aksk", "password"])
@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_a_redirected_put_fails_naming_its_location_and_sends_nothing_elsewhere(
        tmp_path, recorder, code, method):
    with HostileServer(put=f"redirect-{code}", redirect_to=recorder.url) as server:
        result, rows = await run(server, tmp_path, method)
    assert recorder.requests == []
    assert result.exit_code == 1
    assert outcomes(rows) == {("failed", "redirect")}
    for row in rows:
        assert row["http_status"] == str(code) and row["attempts"] == "1"
        location = f"{recorder.url}/v2/{PROJECT}/snapshots/{row['snapshot_id']}"
        assert location in row["error_message"] and QUERY_SECRET not in row["error_message"]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_a_redirecting_identity_service_never_gets_the_password_resent(tmp_path, recorder, code):
    with HostileServer(token=f"redirect-{code}", redirect_to=recorder.url) as server:
        with pytest.raises(ConfigError) as refused:
            await run(server, tmp_path, "password")
        assert len(server.requests) == 1  # one token request, not retried
    assert recorder.requests == []
    assert f"redirected to {recorder.url}/v3/auth/tokens" in str(refused.value)
    assert QUERY_SECRET not in str(refused.value)


async def test_a_redirected_catalog_request_keeps_the_token(tmp_path, recorder):
    with (HostileServer(catalog="redirect-302", redirect_to=recorder.url) as server,
          pytest.raises(ConfigError, match="redirected to")):
            await run(server, tmp_path, "token", endpoint=None, auth_url=f"{server.url}/v3")
    assert recorder.requests == []


async def test_a_redirected_credential_check_is_one_line_before_any_put(tmp_path, recorder):
    with HostileServer(listing="redirect-301", redirect_to=recorder.url) as server:
        with pytest.raises(ConfigError, match=f"redirected to {recorder.url}/v2/{PROJECT}/snapshots/detail"):
            await run(server, tmp_path)
        assert server.puts() == []
    assert recorder.requests == []


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A certificate for 127.0.0.1, made by openssl (no other test dependency needed)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


async def test_https_redirected_to_http_sends_no_token_in_clear(tmp_path, recorder, tls):
    context, cert = tls
    with HostileServer(put="redirect-301", redirect_to=recorder.url, tls=context) as server:
        assert server.url.startswith("https://") and recorder.url.startswith("http://")
        result, rows = await run(server, tmp_path, ca_bundle=str(cert))
    assert recorder.requests == []
    assert outcomes(rows) == {("failed", "redirect")}


async def test_a_token_issued_already_expired_is_not_asked_for_again_and_again(tmp_path):
    # Taken as it was, each PUT asked for a new token: 25 logins for 50 rows.
    with HostileServer(token="token-expired") as server:
        with pytest.raises(ConfigError, match="issued a token already expired"):
            await run(server, tmp_path, "password", ids=other_ids(50))
        assert len(server.requests) == 3 and server.puts() == []  # --max-attempts 3


# -- 6. a 2xx must be about the snapshot asked, with the values sent ----------------------------

@pytest.mark.parametrize("behaviour, outcome, code, attempts", [
    ("ok", "applied", "", 1),
    ("display-names", "applied", "", 1),  # the v1 view names them display_*
    ("other-id", "failed", "answer_mismatch", 1),
    ("other-name", "failed", "answer_mismatch", 1),
    ("other-description", "failed", "answer_mismatch", 1),
    ("snapshot-empty", "failed", "answer_mismatch", 1),
    # Unreadable: perhaps cut off on the way, so retried (PUT is idempotent), then failed.
    ("snapshot-string", "failed", "unreadable_response", 3),
    ("snapshot-list", "failed", "unreadable_response", 3),
    ("snapshot-number", "failed", "unreadable_response", 3),
    ("no-content", "failed", "unreadable_response", 3),
    ("html", "failed", "unreadable_response", 3),
])
async def test_a_2xx_counts_as_applied_only_when_it_names_what_was_asked(
        tmp_path, behaviour, outcome, code, attempts):
    with HostileServer(put=behaviour) as server:
        result, rows = await run(server, tmp_path)
        assert len(server.puts()) == len(IDS) * attempts
    assert len(rows) == len(IDS)
    assert outcomes(rows) == {(outcome, code)}
    assert {r["attempts"] for r in rows} == {str(attempts)}
    assert result.exit_code == (0 if outcome == "applied" else 1)


async def test_a_server_that_strips_white_space_still_confirms_the_change(tmp_path):
    with HostileServer(put="stripped") as server:
        jobs = write_jobs(tmp_path / "jobs.csv", {IDS[0]: "  padded name  "})
        report = tmp_path / "report.csv"
        await run_job(settings_for(server), JobSpec(InputSpec(str(jobs)), str(report)), on_terminal=False)
    assert [(r["outcome"], r["server_name"]) for r in read_report(report)] == [("applied", "padded name")]


async def test_a_mismatch_names_what_the_server_answered(tmp_path):
    with HostileServer(put="other-id") as server:
        _, rows = await run(server, tmp_path, ids=IDS[:1])
    assert "99999999-9999-4999-8999-999999999999" in rows[0]["error_message"]
    assert IDS[0] in rows[0]["error_message"]


# -- 16. bounded answers, and answers that never end --------------------------------------------

@pytest.mark.parametrize("behaviour, code", [
    ("huge", "answer_too_large"),  # chunked, no Content-Length: stops reading at the bound
    ("huge-declared", "answer_too_large"),  # the same, with a Content-Length
    ("gzip-bomb", "answer_too_large"),  # bounded after decompression
])
async def test_a_2xx_too_big_for_a_snapshot_fails_without_being_read(tmp_path, behaviour, code):
    with HostileServer(put=behaviour) as server:
        result, rows = await run(server, tmp_path, ids=IDS[:1])
    assert outcomes(rows) == {("failed", code)} and rows[0]["attempts"] == "1"
    assert result.exit_code == 1


async def test_a_huge_error_page_keeps_its_status_and_is_retried(tmp_path):
    with HostileServer(put="huge-error") as server:
        _, rows = await run(server, tmp_path, ids=IDS[:1])
    assert outcomes(rows) == {("failed", "http_503")} and rows[0]["attempts"] == "3"
    assert rows[0]["error_message"] == "Service Unavailable"


@pytest.mark.parametrize("where", ["listing", "token"])
async def test_a_huge_listing_or_token_is_one_line_before_any_put(tmp_path, where):
    with HostileServer(**{where: "huge"}) as server:
        with pytest.raises(ConfigError, match="too large"):
            await run(server, tmp_path, "password")
        assert server.puts() == []


async def test_a_trickling_answer_ends_at_the_total_timeout(tmp_path):
    # Each byte comes within the read timeout; only the total timeout can end it.
    with HostileServer(put="trickle", trickle_interval=0.2) as server:
        _, rows = await run(server, tmp_path, ids=IDS[:1], read_timeout=1.0, total_timeout=1.0,
                            max_attempts=1)
    assert outcomes(rows) == {("failed", "timeout")}


@pytest.mark.parametrize("behaviour, code", [
    ("big-header", "invalid_answer"),
    ("many-headers", "invalid_answer"),
    ("length-too-long", "truncated_response"),
    ("length-too-short", "invalid_answer"),  # more body than announced
])
async def test_absurd_headers_end_as_one_clear_failed_row(tmp_path, behaviour, code):
    with HostileServer(put=behaviour) as server:
        result, rows = await run(server, tmp_path, ids=IDS[:1])
    assert outcomes(rows) == {("failed", code)} and rows[0]["error_message"]
    assert result.exit_code == 1


def _max_rss_mb_of(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """`snaprelabel ARGS` run by a small parent that reports its child's peak RSS: the test
    process's own RUSAGE_CHILDREN would count every child the suite ever ran."""
    probe = ("import resource, subprocess, sys;"
             "done = subprocess.run([sys.executable, '-m', 'worker', *sys.argv[1:]],"
             " capture_output=True, text=True);"
             "sys.stderr.write(done.stderr); sys.stdout.write(done.stdout);"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
             "sys.exit(done.returncode)")
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env)
    *stderr, rss_kb = done.stderr.strip().splitlines()
    done.stderr = "\n".join(stderr)
    return done, int(rss_kb) / 1024


@pytest.mark.parametrize("behaviour", ["huge", "gzip-bomb"])
def test_a_huge_answer_leaves_memory_flat(tmp_path, behaviour):
    """400 MB streamed, or 1 GiB from a 1 MB gzip bomb: before, 963 MB and 7.2 GB of RSS."""
    with HostileServer(put=behaviour) as server:
        jobs = write_jobs(tmp_path / "jobs.csv", {IDS[0]: "x"})
        done, rss_mb = _max_rss_mb_of(
            "run", str(jobs), "--endpoint", server.url, "--project-id", PROJECT, "--rate", "0",
            "--report", str(tmp_path / "r.csv"), "--max-attempts", "1",
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "SNAPRELABEL_TOKEN": TOKEN})
    assert done.returncode == 1, done.stderr
    assert outcomes(read_report(tmp_path / "r.csv")) == {("failed", "answer_too_large")}
    assert rss_mb < 300, f"peak RSS {rss_mb:.0f} MB"


# -- 11. server-given waits ---------------------------------------------------------------------

async def test_absurd_date_headers_are_no_count_of_the_quota(tmp_path):
    with HostileServer(put="absurd-dates") as server:
        result, rows = await run(server, tmp_path, rate="auto")
    assert outcomes(rows) == {("applied", "")} and result.exit_code == 0
    assert len(server.puts()) > len(IDS)  # and 429s among them, each with its nonsense Date


@pytest.mark.parametrize("retry_after, outcome", [
    ("1000000000", "failed"),  # 31 years: past the job deadline, so the row gives up at once
    ("1e9", "failed"),
    ("inf", "failed"),
    ("Fri, 31 Dec 9999 23:59:59 GMT", "failed"),
    ("nan", "applied"),  # meaningless: ignored, the usual backoff
    ("-5", "applied"),
    ("0", "applied"),
])
async def test_an_absurd_retry_after_never_stalls_the_job(tmp_path, retry_after, outcome):
    with HostileServer(put="throttle-once", retry_after=retry_after) as server:
        _, rows = await run(server, tmp_path, ids=IDS[:1], job_deadline=5.0)
    assert [r["outcome"] for r in rows] == [outcome]


# -- 2. a refusal that echoes the request prints no secret --------------------------------------

def _secret_forms(secret: str, user: str | None = None) -> list[str]:
    forms = [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             quote(secret, safe=""), quote(secret), quote_plus(secret)]
    if user:
        forms.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return forms


def _cli_env(server: HostileServer, method: str) -> dict[str, str]:
    if method == "token":
        return {"SNAPRELABEL_TOKEN": TOKEN}
    if method == "aksk":
        return {"HUAWEICLOUD_SDK_AK": "HOSTILEAK0001", "HUAWEICLOUD_SDK_SK": SECRET_KEY,
                "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN}
    return {"OS_AUTH_URL": f"{server.url}/v3", "OS_USERNAME": USER, "OS_USER_DOMAIN_NAME": "Lab",
            "OS_PASSWORD": PASSWORD}


@pytest.mark.parametrize("command", ["auth check", "run"])
@pytest.mark.parametrize("method", ["password", "password-file", "token", "aksk"])
def test_a_refusal_echoing_the_request_prints_no_secret(tmp_path, command, method):
    where = {"token": "echo-401"} if method.startswith("password") else {"listing": "echo-401"}
    with HostileServer(**where) as server:
        env = _cli_env(server, method.removesuffix("-file"))
        extra: list[str] = []
        if method == "password-file":
            (tmp_path / "pw").write_text(env.pop("OS_PASSWORD") + "\n")
            extra = ["--password-file", str(tmp_path / "pw")]
        jobs = write_jobs(tmp_path / "jobs.csv", {IDS[0]: "x"})
        target = (["run", str(jobs), "--report", str(tmp_path / "r.csv")] if command == "run"
                  else ["auth", "check"])
        done = run_cli(*target, "--endpoint", server.url, "--project-id", PROJECT, *extra, env=env)
        assert server.requests, "the server was asked"
    assert done.returncode == 2, done.stderr
    assert "requires authentication" in done.stderr  # the server's message is there...
    secrets = {"password": _secret_forms(PASSWORD, USER), "password-file": _secret_forms(PASSWORD, USER),
               "token": _secret_forms(TOKEN), "aksk": _secret_forms(SECURITY_TOKEN)}[method]
    for form in secrets:  # ...but no secret in any form
        assert form not in done.stderr and form not in done.stdout, form
