from pathlib import Path

import pytest

from headrace.config import ConfigError, Secret, load, parse

DESIGN_EXAMPLE = """
[server]
listen = "127.0.0.1:8787"
database = "sqlite:///headrace.db"
admin_token = "env:HEADRACE_ADMIN_TOKEN"

[sources.dodo]
secrets = ["env:DODO_WEBHOOK_SECRET"]

[destinations.payments]
source = "dodo"
events = ["payment.*", "refund.succeeded"]
url = "https://app.windmill.dev/api/w/acme/jobs/run/f/f/dodo/on_payment"
token = "env:WINDMILL_TOKEN"
transform = "builtin:payment"
retry_schedule = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
schema = "enforce"
"""
ENV = {
    "HEADRACE_ADMIN_TOKEN": "admin-secret-value",
    "DODO_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "WINDMILL_TOKEN": "wm-secret-value",
}


def test_the_design_example_loads_as_written():
    settings = parse(DESIGN_EXAMPLE, environ=ENV)
    dest = settings.destinations["payments"]
    assert dest.target.workspace == "acme" and dest.target.kind == "flow" and dest.target.path == "f/dodo/on_payment"
    assert dest.bearer.reveal() == "wm-secret-value"
    assert dest.retry_delays == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert dest.schema_mode == "enforce"
    assert settings.destinations_for("dodo", "payment.succeeded") == ["payments"]
    assert settings.destinations_for("dodo", "refund.succeeded") == ["payments"]
    assert settings.destinations_for("dodo", "refund.failed") == []


def test_secrets_never_show_in_repr():
    settings = parse(DESIGN_EXAMPLE, environ=ENV)
    text = repr(settings) + str(settings.model_dump())
    for value in ENV.values():
        assert value not in text
    assert repr(Secret("x")) == "Secret('***')"


def test_missing_env_names_key_and_variable():
    env = dict(ENV)
    del env["WINDMILL_TOKEN"]
    with pytest.raises(ConfigError) as err:
        parse(DESIGN_EXAMPLE, environ=env)
    assert "[destinations.payments] token" in str(err.value) and "WINDMILL_TOKEN" in str(err.value)


def test_unknown_keys_are_errors_naming_the_table():
    with pytest.raises(ConfigError) as err:
        parse(DESIGN_EXAMPLE.replace('schema = "enforce"', 'schema = "enforce"\nretries = 3'), environ=ENV)
    assert "[destinations.payments] retries" in str(err.value) and "unknown key" in str(err.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('events = ["payment.*", "refund.succeeded"]', 'events = ["payment"]'), "events"),
        (('events = ["payment.*", "refund.succeeded"]', "events = []"), "at least one"),
        (
            ("https://app.windmill.dev/api/w/acme/jobs/run/f/f/dodo/on_payment", "https://example.com/hook"),
            "expected https://HOST/api/w/WORKSPACE",
        ),
        (('source = "dodo"', 'source = "stripe"'), "not a [sources.NAME]"),
        (('"5s", "5m"', '"5 seconds", "5m"'), "retry_schedule"),
        (('listen = "127.0.0.1:8787"', 'listen = "8787"'), "HOST:PORT"),
        (('schema = "enforce"', 'schema = "strict"'), "schema"),
    ],
)
def test_bad_values_name_the_key(change, expected):
    with pytest.raises(ConfigError) as err:
        parse(DESIGN_EXAMPLE.replace(*change), environ=ENV)
    assert expected in str(err.value)


def test_public_listen_needs_an_admin_token():
    text = DESIGN_EXAMPLE.replace('listen = "127.0.0.1:8787"', 'listen = "0.0.0.0:8787"').replace(
        'admin_token = "env:HEADRACE_ADMIN_TOKEN"\n', ""
    )
    with pytest.raises(ConfigError, match="admin_token"):
        parse(text, environ=ENV)


def test_token_may_come_from_the_url():
    text = DESIGN_EXAMPLE.replace('token = "env:WINDMILL_TOKEN"\n', "").replace(
        "on_payment", "on_payment?token=url-token"
    )
    dest = parse(text, environ=ENV).destinations["payments"]
    assert dest.bearer.reveal() == "url-token"
    assert "url-token" not in dest.target.run_url


def test_a_destination_needs_some_token():
    with pytest.raises(ConfigError, match="no Windmill token"):
        parse(DESIGN_EXAMPLE.replace('token = "env:WINDMILL_TOKEN"\n', ""), environ=ENV)


def test_bad_secret_shape_is_reported():
    env = {**ENV, "DODO_WEBHOOK_SECRET": "not-a-secret!"}
    with pytest.raises(ConfigError, match=r"\[sources.dodo\] secrets"):
        parse(DESIGN_EXAMPLE, environ=env)


def test_missing_file_says_how_to_make_one(tmp_path: Path):
    with pytest.raises(ConfigError, match="headrace init"):
        load(tmp_path / "nope.toml")


def test_invalid_toml_is_reported(tmp_path: Path):
    path = tmp_path / "h.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(path, environ={})


def test_sqlite_path_is_relative_to_the_config_file(tmp_path: Path):
    path = tmp_path / "h.toml"
    path.write_text(DESIGN_EXAMPLE)
    assert load(path, environ=ENV).sqlite_path == tmp_path / "headrace.db"


@pytest.mark.parametrize("token", ["", "a", "short-token-15c", "aaaaaaaaaaaaaaaaaaaaaaaa", "with space in the token"])
def test_empty_short_or_plain_admin_tokens_are_refused_with_how_to_generate_one(token):
    text = DESIGN_EXAMPLE.replace('"env:HEADRACE_ADMIN_TOKEN"', f'"{token}"')
    with pytest.raises(ConfigError) as err:
        parse(text, environ=ENV)
    message = str(err.value)
    assert "[server] admin_token" in message and "secrets.token_urlsafe(32)" in message
    assert f'"{token}"' not in message or not token  # the token itself is never echoed


def test_an_admin_token_at_the_minimum_length_is_accepted():
    text = DESIGN_EXAMPLE.replace('"env:HEADRACE_ADMIN_TOKEN"', '"k7Qx2mP9vR4tZ8wB"')
    assert parse(text, environ=ENV).server.management == "token"


def test_open_management_is_asked_for_by_name_and_only_on_loopback():
    no_token = DESIGN_EXAMPLE.replace('admin_token = "env:HEADRACE_ADMIN_TOKEN"\n', "")
    assert parse(no_token, environ=ENV).server.management == "closed"
    opened = no_token.replace("[server]\n", "[server]\nopen_management = true\n")
    assert parse(opened, environ=ENV).server.management == "open"
    public = opened.replace('listen = "127.0.0.1:8787"', 'listen = "0.0.0.0:8787"')
    with pytest.raises(ConfigError, match="only allowed on a loopback"):
        parse(public, environ=ENV)
    both = DESIGN_EXAMPLE.replace("[server]\n", "[server]\nopen_management = true\n")
    with pytest.raises(ConfigError, match="both set"):
        parse(both, environ=ENV)


def test_proxy_and_base_path_settings_are_checked():
    server = DESIGN_EXAMPLE.replace(
        "[server]\n", '[server]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\nbase_path = "/hr/"\n'
    )
    settings = parse(server, environ=ENV).server
    assert settings.base_path == "/hr" and len(settings.proxy_networks) == 2
    for bad, expected in (
        ('trusted_proxies = ["nginx"]', "not an IP address"),
        ('base_path = "hr"', "write a path"),
        ('base_path = "/h r"', "write a path"),
        ('header_timeout = "0s"', "out of range: write from 1s to 5m"),
    ):
        with pytest.raises(ConfigError, match=expected):
            parse(DESIGN_EXAMPLE.replace("[server]\n", f"[server]\n{bad}\n"), environ=ENV)
    opened = DESIGN_EXAMPLE.replace('admin_token = "env:HEADRACE_ADMIN_TOKEN"\n', "").replace(
        "[server]\n", '[server]\nopen_management = true\ntrusted_proxies = ["127.0.0.1"]\n'
    )
    with pytest.raises(ConfigError, match="proxy would make the open API public"):
        parse(opened, environ=ENV)


ADMIN_A = "first-admin-token-1234"
ADMIN_B = "second-admin-token-5678"


def test_admin_token_may_be_a_list_during_a_rotation_and_each_must_be_strong():
    one = DESIGN_EXAMPLE.replace('"env:HEADRACE_ADMIN_TOKEN"', f'"{ADMIN_A}"')
    assert [t.reveal() for t in parse(one, environ=ENV).server.admin_token] == [ADMIN_A]  # the old form
    both = DESIGN_EXAMPLE.replace('"env:HEADRACE_ADMIN_TOKEN"', f'["env:HEADRACE_ADMIN_TOKEN", "{ADMIN_B}"]')
    tokens = parse(both, environ={**ENV, "HEADRACE_ADMIN_TOKEN": ADMIN_A}).server.admin_token
    assert [t.reveal() for t in tokens] == [ADMIN_A, ADMIN_B]
    weak = DESIGN_EXAMPLE.replace('"env:HEADRACE_ADMIN_TOKEN"', f'["{ADMIN_A}", "aaaaaaaaaaaaaaaaaaaa"]')
    with pytest.raises(ConfigError) as err:
        parse(weak, environ=ENV)
    assert "[server] admin_token: token #2 is too short or too plain" in str(err.value)
    assert ADMIN_A not in str(err.value) and "aaaaaaaaaaaaaaaaaaaa" not in str(err.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[]", "the list is empty"),
        ("[" + ", ".join(f'"{ADMIN_A}-{i}"' for i in range(6)) + "]", "has 6 tokens; at most 5"),
        (f'["{ADMIN_A}", 7]', "[server] admin_token[1]: expected a string"),
        ('["env:UNSET_ADMIN_TOKEN"]', "[server] admin_token[0]: environment variable UNSET_ADMIN_TOKEN is not set"),
    ],
)
def test_admin_token_lists_at_and_past_their_limits(value: str, expected: str):
    text = DESIGN_EXAMPLE.replace('"env:HEADRACE_ADMIN_TOKEN"', value)
    with pytest.raises(ConfigError) as err:
        parse(text, environ=ENV)
    assert expected in str(err.value)
    five = DESIGN_EXAMPLE.replace(
        '"env:HEADRACE_ADMIN_TOKEN"', "[" + ", ".join(f'"{ADMIN_A}-{i}"' for i in range(5)) + "]"
    )
    assert len(parse(five, environ=ENV).server.admin_token) == 5


def test_pid_file_is_relative_to_the_config_file(tmp_path: Path):
    path = tmp_path / "h.toml"
    path.write_text(DESIGN_EXAMPLE.replace("[server]\n", '[server]\npid_file = "run/headrace.pid"\n'))
    assert load(path, environ=ENV).pid_path == tmp_path / "run" / "headrace.pid"
    path.write_text(DESIGN_EXAMPLE.replace("[server]\n", '[server]\npid_file = "/run/headrace/headrace.pid"\n'))
    assert load(path, environ=ENV).pid_path == Path("/run/headrace/headrace.pid")
    path.write_text(DESIGN_EXAMPLE.replace("[server]\n", '[server]\npid_file = "run/"\n'))
    with pytest.raises(ConfigError, match="pid_file: 'run/': give a file path"):
        load(path, environ=ENV)


def test_file_references_are_read_relative_to_the_config_and_again_at_each_load(tmp_path: Path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "dodo").write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
    (secrets_dir / "admin").write_text(f"{ADMIN_A}\r\n")
    path = tmp_path / "h.toml"
    text = DESIGN_EXAMPLE.replace('"env:HEADRACE_ADMIN_TOKEN"', '"file:secrets/admin"').replace(
        '"env:DODO_WEBHOOK_SECRET"', f'"file:{secrets_dir / "dodo"}"'
    )
    path.write_text(text)
    settings = load(path, environ=ENV)
    assert settings.server.admin_token[0].reveal() == ADMIN_A
    assert settings.sources["dodo"].secrets[0].reveal() == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    (secrets_dir / "admin").write_text(ADMIN_B)  # rotated: the next load (a reload) reads the new one
    assert load(path, environ=ENV).server.admin_token[0].reveal() == ADMIN_B


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"\xff\xfe-not-utf8-token", "is not UTF-8 text"),
        (b"x" * 65537, "is larger than 65536 bytes"),
    ],
)
def test_unreadable_empty_or_oversized_secret_files_are_refused_by_key(tmp_path: Path, content, expected):
    secret = tmp_path / "admin"
    if content is not None:
        secret.write_bytes(content)
    text = DESIGN_EXAMPLE.replace('"env:HEADRACE_ADMIN_TOKEN"', f'"file:{secret}"')
    with pytest.raises(ConfigError) as err:
        parse(text, environ=ENV)
    assert str(err.value).startswith("[server] admin_token: ") and str(secret) in str(err.value)
    assert expected in str(err.value)
    assert "xxxx" not in str(err.value)


def test_a_secret_file_at_the_size_limit_is_read(tmp_path: Path):
    secret = tmp_path / "admin"
    token = "".join(chr(ord("a") + i % 26) for i in range(65536))
    secret.write_text(token)
    text = DESIGN_EXAMPLE.replace('"env:HEADRACE_ADMIN_TOKEN"', f'"file:{secret}"')
    assert parse(text, environ=ENV).server.admin_token[0].reveal() == token


@pytest.mark.parametrize(
    "query", ["raw=1", "wrap_body=true", "include_header=authorization", "include_query=a", "queue_limit=3"]
)
def test_a_pasted_url_parameter_windmill_misreads_is_refused_at_load_in_one_line(query: str) -> None:
    """CONTRACT R1: never sent; the refusal names the key and the parameter."""
    text = DESIGN_EXAMPLE.replace("on_payment", f"on_payment?{query}")
    with pytest.raises(ConfigError) as err:
        parse(text, environ=ENV)
    message = str(err.value)
    key = query.partition("=")[0]
    assert "destinations.payments" in message and f"remove {key} from the URL" in message, message
    assert len([line for line in message.splitlines() if key in line]) == 1
