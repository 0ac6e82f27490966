"""An admin token copied from an example is publicly known: refused like a short one, with the way to make one.
And deploy/compose/env.example ships no value that could pass: every secret is empty, so compose stops on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace.config import ConfigError, parse

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "compose" / "env.example"
COMPOSE = ENV_EXAMPLE.with_name("compose.yaml")


def config(token: str) -> str:
    return f'[server]\nlisten = "0.0.0.0:8787"\nadmin_token = "{token}"\n'


@pytest.mark.parametrize(
    "token",
    [
        "change-me-generate-with-openssl-rand-hex-32",  # env.example's value until now
        "changeme-changeme-changeme",
        "Change_Me_Please_1234567",
        "replace-me-with-a-real-token",
        "example-admin-token-abcdefgh",
        "your-admin-token-goes-here-1",
        "placeholder-token-0123456789",
    ],
)
def test_placeholder_admin_tokens_are_refused(token: str):
    with pytest.raises(ConfigError) as caught:
        parse(config(token))
    message = str(caught.value)
    assert "[server] admin_token" in message and "placeholder" in message and "secrets.token_urlsafe" in message
    assert token not in message  # a token is never repeated back


def test_a_generated_token_passes():
    assert parse(config("Q3v9s1nL2wKpX8e-Jd0Rm4TzYb7Uh6Ac")).server.admin_token


def test_env_example_leaves_every_value_empty_and_compose_requires_each():
    values = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )
    assert set(values) == {"POSTGRES_PASSWORD", "WINDMILL_URL"}
    for name in values:
        assert values[name] == "", name
        assert f"${{{name}:?" in COMPOSE.read_text(), name  # :? stops compose on an empty value too


def test_compose_takes_headrace_secrets_from_files_that_are_not_shipped():
    import yaml

    compose = yaml.safe_load(COMPOSE.read_text())
    secrets = compose["secrets"]
    assert (
        set(compose["services"]["headrace"]["secrets"])
        == set(secrets)
        == {
            "headrace_admin_token",
            "dodo_webhook_secret",
            "windmill_token",
        }
    )
    config = (COMPOSE.parent / "config" / "headrace.toml").read_text()
    for name, secret in secrets.items():
        assert secret["file"] == "${HEADRACE_SECRETS:-./secrets}/" + name
        assert not (COMPOSE.parent / "secrets" / name).exists()  # nothing to forget to replace
        assert f'"file:/run/secrets/{name}"' in config
    assert "environment" not in compose["services"]["headrace"] or not any(
        "TOKEN" in key or "SECRET" in key for key in compose["services"]["headrace"]["environment"]
    )
