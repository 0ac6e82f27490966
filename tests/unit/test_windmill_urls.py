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
