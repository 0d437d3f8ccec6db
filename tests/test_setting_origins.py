"""`auth check` and the `start` event name where the endpoint came from (a flag, a variable, the
config file), and "settings from" lists only the sources used; before, an endpoint from the
environment or the config file was labelled (--endpoint), and "flags, environment and config file"
was printed with no config file at all."""

from __future__ import annotations

import json

import pytest

from helpers import PROJECT, TOKEN, relabel_targets, run_cli, write_jobs


@pytest.mark.parametrize("where", ["flag", "env", "config"])
def test_auth_check_names_the_endpoints_source(sim_thread, tmp_path, where):
    sim = sim_thread(snapshots=5)
    env = {"SNAPRELABEL_TOKEN": TOKEN}
    args = ["auth", "check", "--project-id", PROJECT]
    config = tmp_path / "snaprelabel.toml"
    if where == "flag":
        args += ["--endpoint", sim.url]
    elif where == "env":
        env["SNAPRELABEL_ENDPOINT"] = sim.url
    else:
        config.write_text(f'endpoint = "{sim.url}"\n')
        args += ["--config", str(config)]
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    label = {"flag": "--endpoint", "env": "SNAPRELABEL_ENDPOINT", "config": f"config file {config}"}[where]
    assert f"endpoint: {sim.url} ({label})" in done.stdout.splitlines()
    sources = {"flag": "flags, environment", "env": "flags, environment",
               "config": "flags, environment, config file " + str(config)}[where]
    assert f"settings from: {sources}" in done.stdout.splitlines()
    assert "config file" in done.stdout if where == "config" else "config file" not in done.stdout


def test_the_start_event_names_the_endpoints_source(sim_thread, tmp_path):
    sim = sim_thread(snapshots=5)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 2))
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--project-id", PROJECT,
                   env={"SNAPRELABEL_TOKEN": TOKEN, "SNAPRELABEL_ENDPOINT": sim.url})
    assert done.returncode == 0, done.stderr
    start = next(json.loads(line) for line in done.stdout.splitlines() + done.stderr.splitlines()
                 if line.startswith("{") and json.loads(line).get("event") == "start")
    assert start["endpoint_from"] == "SNAPRELABEL_ENDPOINT"
