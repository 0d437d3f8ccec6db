"""What a container's unusual surroundings do to the CLI: a uid with no passwd entry and no HOME
(docker run --user 1234), a working directory it cannot write. One line and exit 2, never a
traceback. (A Redis that answers an error at start-up: tests/test_queue_hostile.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import NO_METADATA, ROOT

# The CLI as a uid without a passwd entry sees it: getpwuid() finds nothing. (Portable: no root
# needed to make such a uid.)
NO_PASSWD_ENTRY = (
    "import pwd, runpy, sys\n"
    "def missing(uid): raise KeyError(f'getpwuid(): uid not found: {uid}')\n"
    "pwd.getpwuid = missing\n"
    "sys.argv = ['snaprelabel', *sys.argv[1:]]\n"
    "runpy.run_module('worker', run_name='__main__')\n"
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SNAPRELABEL_", "OS_", "HUAWEICLOUD_SDK_")) and k != "HOME"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(NO_METADATA)
    env.update(extra)
    return env


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_os_cloud_without_home_or_passwd_entry_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-c", NO_PASSWD_ENTRY, "auth", "check", "--os-cloud", "lab"],
                          capture_output=True, text=True, timeout=60, env=clean_env(), cwd=tmp_path)
    line = one_error_line(done)
    assert line.startswith("snaprelabel auth: error: cloud 'lab': no clouds.yaml found"), line


def test_os_cloud_without_home_still_finds_the_clouds_yaml_in_the_working_directory(tmp_path):
    (tmp_path / "clouds.yaml").write_text(
        "clouds:\n  lab:\n    auth: {auth_url: 'https://iam.example.com/v3', username: bob,"
        " user_domain_name: Lab, project_id: '0123456789abcdef0123456789abcdef'}\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", NO_PASSWD_ENTRY, "auth", "check", "--os-cloud", "lab"],
                          capture_output=True, text=True, timeout=60, env=clean_env(), cwd=tmp_path)
    line = one_error_line(done)  # found, and short of a password: a setting to fix
    assert "no password" in line, line


def test_demo_in_a_directory_it_cannot_write_is_one_line_and_exit_2(tmp_path):
    # /proc refuses a new directory to every user, root included.
    done = subprocess.run([sys.executable, "-m", "worker", "demo", "--rows", "5"], capture_output=True,
                          text=True, timeout=60, env=clean_env(), cwd="/proc")
    line = one_error_line(done)
    assert line.startswith("snaprelabel demo: error: cannot write its files in /proc/snaprelabel-demo"), line


def test_demo_with_a_dir_under_a_file_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "worker", "demo", "--rows", "5", "--dir", str(blocker / "demo")],
                          capture_output=True, text=True, timeout=60, env=clean_env(), cwd=tmp_path)
    line = one_error_line(done)
    assert f"cannot write its files in {blocker / 'demo'}" in line, line
