"""The tool against the real OpenStack parts of ../shared/openstack: Keystone 30.0.0 issuing
60-s tokens, and cinder-api 29.0.0 whose keystonemiddleware validates each one. Not in the
default run (minutes, and the parts are installed on few machines): `pytest -m real_openstack`
(docs/auth.md). It starts what is not running and stops what it started; Keystone already
running with another token lifetime is restarted with 60 s.

Each test seeds its own snapshots, runs the CLI in a child process with an openrc-style
environment only (no --endpoint, no --token), and checks Cinder's state through its API
(real-keystone/verify.py). Figures (rows, seconds, token requests) are printed."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.real_openstack

ROOT = Path(__file__).resolve().parent.parent
PARTS = Path(os.environ.get("REAL_OPENSTACK_DIR", ROOT.parent / "shared" / "openstack"))
KS_DIR, CINDER_DIR = PARTS / "real-keystone", PARTS / "real-cinder"
KH = Path(os.environ.get("REAL_KEYSTONE_HOME", "/tmp/real-keystone"))
CH = Path(os.environ.get("REAL_CINDER_HOME", "/tmp/real-cinder"))
TTL = 60
PATH = "/usr/local/bin:/usr/bin:/bin"


def _alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def _script(path: Path, **env: str) -> None:
    done = subprocess.run([str(path)], env={**os.environ, "REAL_KEYSTONE_HOME": str(KH),
                                            "REAL_CINDER_HOME": str(CH), **env},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{path.name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def _ttl() -> str:
    conf = KH / "etc" / "keystone.conf"
    lines = conf.read_text().splitlines() if conf.exists() else []
    return next((line.split("=", 1)[1].strip() for line in lines if line.startswith("expiration =")), "")


@pytest.fixture(scope="module")
def cloud():
    """Keystone (60-s tokens) and cinder-api with keystonemiddleware; the ids users.py wrote."""
    if not (KS_DIR / "start.sh").exists() or not (KH / "venv").exists() or not (CH / "venv").exists():
        pytest.skip(f"the real OpenStack parts are not set up ({KS_DIR}, {KH}, {CH}: see their READMEs)")
    started_keystone = started_cinder = False
    if _alive(KH / "keystone.pid") and _ttl() != str(TTL):
        _script(KS_DIR / "stop.sh")
    if not _alive(KH / "keystone.pid"):
        _script(KS_DIR / "start.sh", TOKEN_TTL=str(TTL))
        started_keystone = True
    if not _alive(CH / "cinder-api.pid"):
        _script(KS_DIR / "start-cinder.sh", FRESH="1")
        started_cinder = True
    assert "auth_strategy = keystone" in (CH / "etc" / "cinder.conf").read_text(), (
        "cinder-api runs without keystonemiddleware: stop it with real-cinder/stop.sh")
    ids = dict(line.split("=", 1) for line in (KH / "ids.env").read_text().split())
    yield ids
    if started_cinder:
        _script(CINDER_DIR / "stop.sh")
    if started_keystone:
        _script(KS_DIR / "stop.sh")


def openrc(name: str) -> dict[str, str]:
    """The variables an openrc file of users.py exports."""
    env = {}
    for line in (KH / name).read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def seed(cloud, workdir: Path, count: int, tag: str) -> Path:
    """`count` new snapshots in project relabel; a jobs file giving each a new name and
    description, without a project_id column."""
    seeded = workdir / "seeded.csv"
    subprocess.run([str(CH / "venv" / "bin" / "python"), str(CINDER_DIR / "seed.py"), "--count", str(count),
                    "--project", cloud["RELABEL_PROJECT_ID"], "--user", cloud["RELABELER_USER_ID"],
                    "--prefix", f"{tag}-old", "--csv", str(seeded)],
                   check=True, capture_output=True, timeout=600, env={**os.environ, "REAL_CINDER_HOME": str(CH)})
    jobs = workdir / "jobs.csv"
    with seeded.open() as src, jobs.open("w", newline="", encoding="utf-8") as dst:
        out = csv.writer(dst)
        out.writerow(["snapshot_id", "new_name", "new_description"])
        for i, row in enumerate(csv.DictReader(src)):
            out.writerow([row["snapshot_id"], f"{tag}-new-{i:05d}", f"relabelled {i} 快照"])
    return jobs


def snaprelabel(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a clean environment with the openrc only."""
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=workdir, capture_output=True,
                          text=True, timeout=900,
                          env={"PATH": PATH, "HOME": str(workdir), "LANG": "C.UTF-8",
                               "PYTHONPATH": str(ROOT), **env})


def verify(jobs: Path) -> tuple[int, str]:
    """Cinder's state through its API, as the relabel user: 'verify: N/M ...'."""
    done = subprocess.run([sys.executable, str(KS_DIR / "verify.py"), str(jobs)], capture_output=True,
                          text=True, timeout=600, env={"PATH": PATH, "REAL_KEYSTONE_HOME": str(KH),
                                                       **openrc("openrc")})
    line = next((x for x in done.stdout.splitlines() if x.startswith("verify: ")), done.stdout + done.stderr)
    return done.returncode, line


class AccessLog:
    """The client's token requests in Keystone's access log (told apart by user agent)."""

    def __init__(self) -> None:
        self.path = KH / "log" / "access.log"
        self.start = self._lines()

    def _lines(self) -> int:
        return len(self.path.read_text(errors="replace").splitlines()) if self.path.exists() else 0

    def token_requests(self) -> int:
        new = self.path.read_text(errors="replace").splitlines()[self.start:]
        return sum('"POST /v3/auth/tokens' in line and "snaprelabel/" in line for line in new)


def report_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def figures(name: str, **values: object) -> None:
    print(f"\nreal-openstack {name}: " + ", ".join(f"{k} {v}" for k, v in values.items()), flush=True)


def test_a_devstack_openrc_with_60_s_tokens_runs_a_90_s_job(cloud, tmp_path):
    # openrc names the project (OS_PROJECT_NAME), not its id, and the jobs file has no
    # project_id column: the rows go to the token's project.
    rows = 450
    jobs = seed(cloud, tmp_path, rows, f"ttl{uuid.uuid4().hex[:6]}")
    env = openrc("openrc")
    assert "OS_PROJECT_ID" not in env and env["OS_PROJECT_NAME"] == "relabel"
    check = snaprelabel(tmp_path, env, "auth", "check")
    assert check.returncode == 0, check.stderr
    assert f"project: {cloud['RELABEL_PROJECT_ID']} (relabel) (rows without a project_id go here)" in check.stdout
    assert "lifetime 60 s" in check.stdout and "warning" not in check.stdout

    log = AccessLog()
    started = time.monotonic()
    done = snaprelabel(tmp_path, env, "run", "jobs.csv", "--report", "r.csv", "--rate", "5",
                       "--concurrency", "4")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    report = report_rows(tmp_path / "r.csv")
    assert len(report) == rows and {r["outcome"] for r in report} == {"applied"}
    assert {r["project_id"] for r in report} == {cloud["RELABEL_PROJECT_ID"]}
    ok, line = verify(jobs)
    assert ok == 0, line
    tokens = log.token_requests()
    # At most 5 rows a second: the job outlives its first 60-s token, which was renewed ahead.
    assert tokens >= 2
    summary = json.loads(done.stdout.splitlines()[-1])
    figures("devstack openrc, TTL 60", rows=rows, seconds=round(seconds, 1), token_requests=tokens,
            requests=summary["requests"], retries=summary["retries"],
            rows_sent_again=sum(r["attempts"] != "1" for r in report), verify=line)


@pytest.fixture
def application_credential(cloud):
    """An application credential the relabel user creates for itself through Keystone's API,
    deleted afterwards: (id, name, secret)."""
    url = openrc("openrc")["OS_AUTH_URL"].rstrip("/")
    name = f"snaprelabel-{uuid.uuid4().hex[:8]}"
    path = f"{url}/users/{cloud['RELABELER_USER_ID']}/application_credentials"
    body = {"application_credential": {"name": name, "description": "tests/test_real_openstack.py"}}
    with urllib.request.urlopen(_request("POST", path, body, _password_token()), timeout=120) as resp:
        created = json.load(resp)["application_credential"]
    yield created["id"], name, created["secret"]
    # A new token: the first one lived 60 s.
    urllib.request.urlopen(_request("DELETE", f"{path}/{created['id']}", None, _password_token()),
                           timeout=120).close()


def _password_token(name: str = "openrc") -> str:
    """A token for the user and project of an openrc file of users.py."""
    env = openrc(name)
    login = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": env["OS_USERNAME"], "domain": {"name": env["OS_USER_DOMAIN_NAME"]},
        "password": env["OS_PASSWORD"]}}}, "scope": {"project": {
            "name": env["OS_PROJECT_NAME"], "domain": {"name": env["OS_PROJECT_DOMAIN_NAME"]}}}}}
    url = env["OS_AUTH_URL"].rstrip("/")
    with urllib.request.urlopen(_request("POST", f"{url}/auth/tokens", login), timeout=120) as resp:
        return str(resp.headers["X-Subject-Token"])


def _request(method: str, url: str, body: object, token: str | None = None) -> urllib.request.Request:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("X-Auth-Token", token)
    return request


def test_an_application_credential_runs_a_job_and_its_secret_is_never_shown(cloud, tmp_path,
                                                                            application_credential):
    credential_id, name, secret = application_credential
    rows = 60
    jobs = seed(cloud, tmp_path, rows, f"app{uuid.uuid4().hex[:6]}")
    base = {"OS_AUTH_TYPE": "v3applicationcredential", "OS_AUTH_URL": openrc("openrc")["OS_AUTH_URL"],
            "OS_REGION_NAME": "RegionOne", "OS_INTERFACE": "public",
            "OS_APPLICATION_CREDENTIAL_SECRET": secret}
    by_id = {**base, "OS_APPLICATION_CREDENTIAL_ID": credential_id}
    by_name = {**base, "OS_APPLICATION_CREDENTIAL_NAME": name, "OS_USERNAME": "relabeler",
               "OS_USER_DOMAIN_NAME": "Default"}
    outputs = []
    for env in (by_id, by_name):
        check = snaprelabel(tmp_path, env, "auth", "check")
        assert check.returncode == 0, check.stderr
        assert "method: application credential" in check.stdout
        assert f"project: {cloud['RELABEL_PROJECT_ID']}" in check.stdout
        outputs += [check.stdout, check.stderr]

    log = AccessLog()
    started = time.monotonic()
    done = snaprelabel(tmp_path, by_id, "run", "jobs.csv", "--report", "r.csv", "--rate", "10",
                       "--concurrency", "4", "--log-level", "debug")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert {r["outcome"] for r in report_rows(tmp_path / "r.csv")} == {"applied"}
    ok, line = verify(jobs)
    assert ok == 0, line
    tokens = log.token_requests()
    wrong = snaprelabel(tmp_path, {**by_id, "OS_APPLICATION_CREDENTIAL_SECRET": "not-the-secret-8e1"},
                        "run", "jobs.csv", "--report", "r2.csv")
    assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and not (tmp_path / "r2.csv").exists()
    outputs += [done.stdout, done.stderr, wrong.stdout, wrong.stderr,
                (tmp_path / "r.csv").read_text(), (tmp_path / "r.csv.manifest.json").read_text()]
    assert not [text for text in outputs if secret in text or "not-the-secret-8e1" in text]
    figures("application credential", rows=rows, seconds=round(seconds, 1), token_requests=tokens,
            verify=line)


def test_a_reader_only_role_is_warned_about_and_its_run_stops(cloud, tmp_path):
    rows = 30
    jobs = seed(cloud, tmp_path, rows, f"rdr{uuid.uuid4().hex[:6]}")
    env = openrc("reader-openrc")
    check = snaprelabel(tmp_path, env, "auth", "check")
    assert check.returncode == 0, check.stderr  # listing is allowed
    assert "roles: reader (may list snapshots, not update them)" in check.stdout
    assert any(line.startswith("warning: none of the token's roles (reader)") for line in check.stdout.splitlines())

    started = time.monotonic()
    done = snaprelabel(tmp_path, env, "run", "jobs.csv", "--report", "r.csv", "--rate", "10",
                       "--concurrency", "2")
    seconds = time.monotonic() - started
    assert done.returncode == 3, done.stderr[-3000:]
    assert '"event": "read-only roles"' in done.stdout
    report = report_rows(tmp_path / "r.csv")
    refused = [r for r in report if r["outcome"] == "failed"]
    assert refused and {r["http_status"] for r in refused} == {"403"}
    assert "applied" not in {r["outcome"] for r in report}
    ok, line = verify(jobs)
    assert ok != 0 and line.startswith(f"verify: 0/{rows}"), line
    figures("reader only", rows=rows, seconds=round(seconds, 1), refused_403=len(refused),
            not_attempted=sum(r["outcome"] == "not_attempted" for r in report))


@pytest.fixture
def member_of_other_project(cloud):
    """The relabel user made a member of project relabel-other too (by the admin, through
    Keystone's API), and no longer after the test."""
    url = openrc("admin-openrc")["OS_AUTH_URL"].rstrip("/")
    token = _password_token("admin-openrc")
    with urllib.request.urlopen(_request("GET", f"{url}/roles?name=member", None, token), timeout=120) as resp:
        role = json.load(resp)["roles"][0]["id"]
    grant = f"{url}/projects/{cloud['OTHER_PROJECT_ID']}/users/{cloud['RELABELER_USER_ID']}/roles/{role}"
    urllib.request.urlopen(_request("PUT", grant, None, token), timeout=120).close()
    yield cloud["OTHER_PROJECT_ID"]
    urllib.request.urlopen(_request("DELETE", grant, None, _password_token("admin-openrc")), timeout=120).close()


def test_two_projects_in_one_job(cloud, tmp_path, member_of_other_project):
    """A devstack openrc (project by name) and a jobs file whose rows name two projects: one
    project-scoped token per project, every row applied in its own project."""
    other = member_of_other_project
    per_project = 40
    tag = f"two{uuid.uuid4().hex[:6]}"
    (tmp_path / "a").mkdir()
    mine = seed(cloud, tmp_path / "a", per_project, tag)  # project relabel: a/jobs.csv
    theirs_dir = tmp_path / "b"
    theirs_dir.mkdir()
    seeded = theirs_dir / "seeded.csv"
    subprocess.run([str(CH / "venv" / "bin" / "python"), str(CINDER_DIR / "seed.py"), "--count", str(per_project),
                    "--project", other, "--user", cloud["RELABELER_USER_ID"], "--prefix", f"{tag}-old-b",
                    "--csv", str(seeded)],
                   check=True, capture_output=True, timeout=600, env={**os.environ, "REAL_CINDER_HOME": str(CH)})
    jobs = tmp_path / "jobs.csv"
    other_jobs = theirs_dir / "jobs.csv"
    with mine.open() as a, seeded.open() as b, jobs.open("w", newline="", encoding="utf-8") as dst, \
            other_jobs.open("w", newline="", encoding="utf-8") as check_b:
        out, out_b = csv.writer(dst), csv.writer(check_b)
        out.writerow(["project_id", "snapshot_id", "new_name", "new_description"])
        out_b.writerow(["snapshot_id", "new_name", "new_description"])
        for row in csv.DictReader(a):
            out.writerow([cloud["RELABEL_PROJECT_ID"], row["snapshot_id"], row["new_name"], row["new_description"]])
        for i, row in enumerate(csv.DictReader(b)):
            values = [row["snapshot_id"], f"{tag}-new-b-{i:05d}", f"relabelled b {i}"]
            out.writerow([other, *values])
            out_b.writerow(values)

    env = openrc("openrc")  # project by name, no OS_PROJECT_ID
    check = snaprelabel(tmp_path, env, "auth", "check", "--jobs", "jobs.csv")
    assert check.returncode == 0, check.stdout + check.stderr
    assert sum(line.startswith("ok ") for line in check.stdout.splitlines()) == 2, check.stdout

    log = AccessLog()
    started = time.monotonic()
    done = snaprelabel(tmp_path, env, "run", "jobs.csv", "--report", "r.csv", "--rate", "10",
                       "--concurrency", "4")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    report = report_rows(tmp_path / "r.csv")
    assert len(report) == 2 * per_project and {r["outcome"] for r in report} == {"applied"}
    assert {r["project_id"] for r in report} == {cloud["RELABEL_PROJECT_ID"], other}
    tokens = log.token_requests()
    assert tokens >= 2  # one token per project (more only if one was renewed)
    ok_a, line_a = verify(mine)
    assert ok_a == 0, line_a
    # The other project's state, through a token scoped to it.
    done_b = subprocess.run([sys.executable, str(KS_DIR / "verify.py"), str(other_jobs)], capture_output=True,
                            text=True, timeout=600, env={"PATH": PATH, "REAL_KEYSTONE_HOME": str(KH),
                                                         **openrc("openrc"), "OS_PROJECT_ID": other})
    assert done_b.returncode == 0, done_b.stdout + done_b.stderr
    figures("two projects", rows=2 * per_project, seconds=round(seconds, 1), token_requests=tokens,
            verify=f"{line_a} | {done_b.stdout.strip().splitlines()[0]}")
