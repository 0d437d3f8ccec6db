"""Credentials from where users keep them: flags, SNAPRELABEL_*, OS_* / HUAWEICLOUD_SDK_*, the
config file, clouds.yaml; which method wins; what is missing, in one line."""

from __future__ import annotations

import pytest

from worker.credentials import resolve
from worker.redaction import SECRETS
from worker.settings import ConfigError, load_settings

P = "0123456789abcdef0123456789abcdef"
Q = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def clouds(tmp_path, monkeypatch):
    """A clouds.yaml named by OS_CLIENT_CONFIG_FILE; the working directory is an empty one."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "etc" / "clouds.yaml"
    path.parent.mkdir()
    path.write_text(f"""
clouds:
  lab:
    auth:
      auth_url: https://keystone.lab.example:5000/v3
      username: carol
      password: cloud-password-9f2
      project_id: {P}
      user_domain_name: Lab
    region_name: region-from-cloud
    interface: internal
  other:
    auth: {{token: x}}
  automation:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.lab.example:5000/v3
      application_credential_name: nightly
      application_credential_secret: cloud-app-secret-71c
      username: carol
      user_domain_name: Lab
    region_name: RegionOne
""")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    return path


def test_precedence_flags_then_snaprelabel_then_os_then_config_file_then_cloud(tmp_path, monkeypatch, clouds):
    config = tmp_path / "c.toml"
    config.write_text('region = "region-from-toml"\nos_cloud = "lab"\n')
    assert load_settings({}, str(config)).region == "region-from-toml"
    monkeypatch.setenv("OS_REGION_NAME", "region-from-os")
    assert load_settings({}, str(config)).region == "region-from-os"
    monkeypatch.setenv("SNAPRELABEL_REGION", "region-from-snaprelabel")
    assert load_settings({}, str(config)).region == "region-from-snaprelabel"
    assert load_settings({"region": "region-from-flag"}, str(config)).region == "region-from-flag"
    # The cloud fills only what nothing else gave.
    settings = load_settings({}, str(config))
    assert (settings.username, settings.interface, settings.cloud_file) == ("carol", "internal", clouds)


def test_the_cloud_is_found_where_openstacksdk_looks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clouds.yml").write_text("clouds:\n  here:\n    auth:\n      username: dave\n")
    (tmp_path / "secure.yaml").write_text("clouds:\n  here:\n    auth:\n      password: secure-file-pw-77\n")
    settings = load_settings({"os_cloud": "here"})
    assert settings.username == "dave"
    assert settings.password.get_secret_value() == "secure-file-pw-77"  # merged from secure.yaml
    assert SECRETS.redact("x secure-file-pw-77 y") == "x *** y"
    monkeypatch.setenv("OS_CLOUD", "nowhere")
    with pytest.raises(ConfigError, match=r"cloud 'nowhere' is not in .*clouds.yml \(clouds there: here\)"):
        load_settings({})


def test_a_broken_clouds_yaml_never_quotes_its_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clouds.yaml").write_text("clouds:\n  c:\n    auth: {password: 'hunter2-secret\n")
    with pytest.raises(ConfigError) as err:
        load_settings({"os_cloud": "c"})
    assert "not valid YAML" in str(err.value) and "hunter2" not in str(err.value)


def test_method_order_token_then_aksk_then_password(monkeypatch):
    monkeypatch.setenv("OS_AUTH_URL", "https://iam.cn-north-4.myhuaweicloud.com/v3")
    monkeypatch.setenv("OS_USERNAME", "erin")
    monkeypatch.setenv("OS_PASSWORD", "pw-erin-31")
    monkeypatch.setenv("OS_PROJECT_ID", P)
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", "AK-ERIN")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "sk-erin-77")
    monkeypatch.setenv("OS_TOKEN", "token-erin-55")
    monkeypatch.setenv("OS_REGION_NAME", "cn-north-4")
    assert resolve(load_settings({})).method == "token"
    monkeypatch.delenv("OS_TOKEN")
    aksk = resolve(load_settings({}))
    assert aksk.method == "aksk" and aksk.endpoint == "https://evs.cn-north-4.myhuaweicloud.com"
    assert aksk.key.project_id == P and "sk-erin" not in aksk.describe()
    password = resolve(load_settings({"auth_method": "password"}))
    assert password.method == "password" and password.endpoint is None  # from the catalog
    assert password.login.tokens_url == "https://iam.cn-north-4.myhuaweicloud.com/v3/auth/tokens"
    assert "pw-erin" not in repr(password) and "sk-erin" not in repr(aksk)


def test_a_file_wins_over_the_variable_and_is_a_secret_at_once(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("pw-from-file-4411\n")
    monkeypatch.setenv("OS_PASSWORD", "pw-from-env")
    creds = resolve(load_settings({"username": "f", "project_id": P, "region": "cn-north-4",
                                   "password_file": str(tmp_path / "pw")}))
    assert creds.login.password == "pw-from-file-4411"  # the newline is not part of it
    assert creds.login.tokens_url == "https://iam.cn-north-4.myhuaweicloud.com/v3/auth/tokens"
    assert SECRETS.redact("pw-from-file-4411") == "***"
    (tmp_path / "sk").write_text("")
    with pytest.raises(ConfigError, match="the secret key file .* is empty"):
        resolve(load_settings({"access_key": "AK", "project_id": P, "sk_file": str(tmp_path / "sk")}))


def test_application_credentials_from_openrc_variables_by_id(monkeypatch):
    monkeypatch.setenv("OS_AUTH_TYPE", "v3applicationcredential")
    monkeypatch.setenv("OS_AUTH_URL", "https://keystone.lab.example:5000")
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_ID", "c0ffee")
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_SECRET", "env-app-secret-5d9")
    monkeypatch.setenv("OS_PASSWORD", "also-a-password-1")  # an auth type names the method
    creds = resolve(load_settings({}))
    assert creds.method == "application_credential" and creds.endpoint is None  # from the catalog
    assert creds.login.request_body() == {"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": "c0ffee", "secret": "env-app-secret-5d9"}}}}  # no scope
    assert creds.login.tokens_url == "https://keystone.lab.example:5000/v3/auth/tokens"
    assert "env-app-secret" not in repr(creds) and "env-app-secret" not in creds.describe()
    assert creds.describe().startswith("application credential (Keystone v3 at https://keystone")
    assert SECRETS.redact("env-app-secret-5d9") == "***"
    assert "application_credential_secret" not in load_settings({}).public()


def test_application_credentials_by_name_from_clouds_yaml_and_the_secret_file_wins(tmp_path, monkeypatch,
                                                                                   clouds):
    creds = resolve(load_settings({"os_cloud": "automation"}))
    assert creds.method == "application_credential" and creds.region == "RegionOne"
    assert creds.login.request_body()["auth"]["identity"]["application_credential"] == {
        "name": "nightly", "user": {"name": "carol", "domain": {"name": "Lab"}},
        "secret": "cloud-app-secret-71c"}
    assert SECRETS.redact("cloud-app-secret-71c") == "***"
    secret = tmp_path / "app-secret"
    secret.write_text("file-app-secret-0b3\n")
    creds = resolve(load_settings({"os_cloud": "automation",
                                   "application_credential_secret_file": str(secret)}))
    assert creds.login.secret == "file-app-secret-0b3"
    assert SECRETS.redact("file-app-secret-0b3") == "***"
    # Without an auth type, a secret alone picks the method, ahead of a password.
    monkeypatch.setenv("OS_AUTH_URL", "https://k/v3")
    monkeypatch.setenv("OS_USERNAME", "dan")
    monkeypatch.setenv("OS_PASSWORD", "pw-dan-1")
    monkeypatch.setenv("OS_PROJECT_ID", P)
    assert resolve(load_settings({})).method == "password"
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_ID", "c0ffee")
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_SECRET", "env-app-secret-2")
    assert resolve(load_settings({})).method == "application_credential"


def test_huawei_sdk_variables(monkeypatch):
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", "AK-H")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "sk-h-2")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SECURITY_TOKEN", "sts-h-3")
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", Q)
    key = resolve(load_settings({"endpoint": "https://evs.example.com"})).key
    assert (key.access_key, key.secret_key, key.security_token, key.project_id) == ("AK-H", "sk-h-2", "sts-h-3", Q)
    monkeypatch.setenv("OS_PROJECT_ID", P)  # OS_PROJECT_ID comes first
    assert load_settings({}).project_id == P


def test_tls_and_interface_variables(tmp_path, monkeypatch):
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("OS_CACERT", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("OS_INSECURE", "True")
    monkeypatch.setenv("OS_INTERFACE", "internalURL")
    settings = load_settings({})
    assert (settings.ca_bundle, settings.verify_tls, settings.interface) == (tmp_path / "ca.pem", False, "internal")


def test_secrets_stay_out_of_the_manifest_settings(monkeypatch):
    monkeypatch.setenv("OS_PASSWORD", "pw-manifest-1")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "sk-manifest-2")
    public = load_settings({"token": "tok-manifest-3"}).public()
    assert not {"password", "secret_key", "token", "security_token"} & public.keys()
    assert "manifest-" not in repr(public)


@pytest.mark.parametrize("env, flags, message", [
    ({}, {"endpoint": "https://e"}, "no credentials: set a token"),
    ({"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "sk"}, {"endpoint": "https://e"},
     "AK/SK: no project (HUAWEICLOUD_SDK_PROJECT_ID or --project-id)"),
    ({"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "sk", "OS_PROJECT_ID": P}, {},
     "no endpoint: give --endpoint"),
    ({"OS_USERNAME": "u", "OS_PASSWORD": "p", "OS_AUTH_URL": "https://k/v3"}, {},
     "password authentication: no project to scope the token to"),
    ({"OS_USERNAME": "u", "OS_PASSWORD": "p", "OS_PROJECT_ID": P}, {},
     "password authentication: no identity service (OS_AUTH_URL, or --region"),
    ({"OS_USERNAME": "u", "OS_PROJECT_ID": P, "OS_AUTH_URL": "https://k"}, {},
     "password authentication: no password (OS_PASSWORD or --password-file)"),
    ({"OS_AUTH_TYPE": "v3oidcpassword"}, {}, "auth type 'v3oidcpassword' is not supported"),
    ({"OS_AUTH_TYPE": "v3applicationcredential"}, {},
     "application credential authentication: no secret (OS_APPLICATION_CREDENTIAL_SECRET or "
     "--application-credential-secret-file)"),
    ({"OS_APPLICATION_CREDENTIAL_SECRET": "s3cr3t-app"}, {},
     "application credential authentication: no credential (OS_APPLICATION_CREDENTIAL_ID, or "
     "OS_APPLICATION_CREDENTIAL_NAME with its user)"),
    ({"OS_APPLICATION_CREDENTIAL_SECRET": "s3cr3t-app", "OS_APPLICATION_CREDENTIAL_NAME": "n"}, {},
     "a credential by name needs its user (OS_USERNAME and OS_USER_DOMAIN_NAME, or OS_USER_ID)"),
    ({"OS_APPLICATION_CREDENTIAL_SECRET": "s3cr3t-app", "OS_APPLICATION_CREDENTIAL_ID": "i"}, {},
     "application credential authentication: no identity service (OS_AUTH_URL)"),
    ({"OS_AUTH_URL": "keystone:5000"}, {}, "setting auth_url: 'keystone:5000' is not an http(s) URL"),
    ({"OS_AUTH_URL": "https://u:pw-in-url@k/v3"}, {}, "give the URL without user:password@"),
    ({"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "sk", "OS_PROJECT_ID": P}, {"region": "cn north"},
     "region 'cn north' is not a region name"),
])
def test_what_is_missing_is_one_line(monkeypatch, env, flags, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        resolve(load_settings(flags))
    assert message in str(err.value) and "\n" not in str(err.value) and "pw-in-url" not in str(err.value)
