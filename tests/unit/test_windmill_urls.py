import pytest

from headrace.windmill.urls import WindmillUrlError, parse_run_url


@pytest.mark.parametrize(
    ("url", "mode", "kind", "path"),
    [
        ("https://app.windmill.dev/api/w/acme/jobs/run/f/f/dodo/on_payment", "async", "flow", "f/dodo/on_payment"),
        ("https://app.windmill.dev/api/w/acme/jobs/run/p/u/ada/ledger", "async", "script", "u/ada/ledger"),
        ("https://wm.example.com/api/w/prod/jobs/run_wait_result/p/f/dodo/x", "wait", "script", "f/dodo/x"),
        ("https://wm.example.com/api/w/prod/jobs/run_wait_result/f/f/dodo/flow", "wait", "flow", "f/dodo/flow"),
    ],
)
def test_copied_urls_parse(url, mode, kind, path):
    target, token = parse_run_url(url)
    assert (target.mode, target.kind, target.path, token) == (mode, kind, path, None)
    assert target.run_url == url


def test_token_and_prefix():
    target, token = parse_run_url("http://10.0.0.5:8000/windmill/api/w/acme/jobs/run/p/f/a/b?token=abc&tag=x")
    assert token == "abc"
    assert target.base_url == "http://10.0.0.5:8000/windmill/api"
    assert target.run_url == "http://10.0.0.5:8000/windmill/api/w/acme/jobs/run/p/f/a/b?tag=x"
    assert target.job_url("J") == "http://10.0.0.5:8000/windmill/api/w/acme/jobs_u/get/J"
    assert target.ui_url("J") == "http://10.0.0.5:8000/windmill/run/J?workspace=acme"


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("ftp://x/api/w/a/jobs/run/p/f/a/b", "https://"),
        ("https://x/api/w/a/jobs/run/h/abc123", "hash"),
        ("https://x/api/w/a/jobs/run_and_stream/p/f/a/b", "only run and run_wait_result"),
        ("https://x/api/w/a/jobs/run/p/justname", "not a Windmill script or flow path"),
        ("https://x/hooks/abc", "expected https://HOST/api/w/WORKSPACE"),
        ("https://x/api/w/a/jobs/run/p/f/a/b?job_id=1", "remove job_id"),
    ],
)
def test_bad_urls_show_the_expected_shape(url, hint):
    with pytest.raises(WindmillUrlError, match=hint.replace("(", r"\(")):
        parse_run_url(url)


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("raw=1", "answers 500 to every run"),
        ("raw=true", "adds the body text"),
        ("wrap_body=true", "wraps the whole body"),
        ("include_header=authorization", "puts the bearer token there"),
        ("include_query=a,b", "copies query parameters"),
        ("queue_limit=5", "does nothing on jobs/run"),
        ("payload=e30", "replaces the job's arguments"),
        ("utm_source=mail", "does not need it"),
    ],
)
def test_a_pasted_url_with_a_parameter_windmill_reads_differently_is_refused_naming_it(query: str, why: str) -> None:
    """CONTRACT R1: refused at config load (the destination validator calls parse_run_url), one line."""
    key = query.partition("=")[0]
    with pytest.raises(WindmillUrlError, match=f"remove {key} from the URL: .*{why}") as caught:
        parse_run_url(f"https://x/api/w/a/jobs/run/p/f/a/b?token=secret-tok&{query}")
    assert "\n" not in str(caught.value) and "secret-tok" not in str(caught.value)


@pytest.mark.parametrize(
    "path",
    [
        "/api/w/a/jobs/run/p/f/a/../b",
        "/api/w/a/jobs/run/p/f/a/./b",
        "/api/w/a/jobs/run/p/f//a/b",
        "/api/w/a/jobs/run/p/f/a/%2e%2e/b",
        "/api/w/a/jobs/run/p/f/a%2fb/c",
        "/x/%2E%2E/api/w/a/jobs/run/p/f/a/b",
        "/x/../api/w/a/jobs/run/p/f/a/b",
        "/api/w/a/jobs/run/p/f/a\\..\\b",
    ],
)
def test_dot_empty_and_percent_encoded_segments_are_refused(path: str) -> None:
    with pytest.raises(WindmillUrlError, match="segment"):
        parse_run_url("https://x" + path)


def test_the_origin_is_normalised_and_credentials_are_refused() -> None:
    target, _ = parse_run_url("HTTPS://WM.Example.COM:443/api/w/a/jobs/run/p/f/a/b")
    assert target.normalised_base == "https://wm.example.com/api"
    assert target.base_url == "https://WM.Example.COM:443/api"  # as before: job ids do not change
    ipv6 = parse_run_url("http://[::1]:8000/api/w/a/jobs/run/p/f/a/b")[0]
    assert ipv6.normalised_base == ipv6.base_url == "http://[::1]:8000/api"
    with pytest.raises(WindmillUrlError, match="remove the user name and password") as caught:
        parse_run_url("https://ann:hunter2@x/api/w/a/jobs/run/p/f/a/b")
    assert "hunter2" not in str(caught.value)


def test_a_refusal_echoes_at_most_40_characters_of_what_it_names() -> None:
    for url in (f"https://x/api/w/a/jobs/run/p/f/a/{'%' * 5000}", f"https://x/api/w/a/jobs/run/p/f/a/b?{'k' * 5000}=1"):
        with pytest.raises(WindmillUrlError) as caught:
            parse_run_url(url)
        assert len(str(caught.value)) < 600
