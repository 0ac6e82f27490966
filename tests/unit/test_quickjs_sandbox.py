"""QuickJSSandbox: Svix/Dodo handler semantics, isolation between runs, limits, errors, no host access."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from headrace.dodo import samples
from headrace.transform import Script, TransformError, WebhookObject
from headrace.transform.quickjs_sandbox import QuickJSSandbox
from headrace.transform.scripts import list_builtins, load_script

URL = "https://windmill.example/api/w/acme/jobs/run/f/f/dodo/on_payment"


@pytest.fixture(scope="module")
def sandbox() -> QuickJSSandbox:
    return QuickJSSandbox()


def webhook(event_type: str = "payment.succeeded") -> WebhookObject:
    return WebhookObject(event_type, samples.load(event_type), URL, webhook_id="msg_2x9")


def run(sandbox: QuickJSSandbox, source: str, event_type: str = "payment.succeeded") -> WebhookObject:
    return sandbox.run(Script("test.js", source), webhook(event_type))


def fails(sandbox: QuickJSSandbox, source: str) -> TransformError:
    with pytest.raises(TransformError) as info:
        run(sandbox, source)
    return info.value


# --- semantics -------------------------------------------------------------------------------------


def test_handler_sees_the_svix_shape(sandbox: QuickJSSandbox) -> None:
    result = run(
        sandbox,
        """function handler(webhook) {
             webhook.payload = {
               keys: Object.keys(webhook).sort(),
               eventType: webhook.eventType, url: webhook.url, method: webhook.method,
               headers: webhook.headers, webhookId: webhook.webhookId, type: webhook.payload.type,
               total: webhook.payload.data.total_amount,
             };
             return webhook;
           }""",
    )
    assert result.payload == {
        "keys": ["eventType", "headers", "method", "origin", "payload", "url", "webhookId"],
        "eventType": "payment.succeeded",
        "url": URL,
        "method": "POST",
        "headers": {},
        "webhookId": "msg_2x9",
        "type": "payment.succeeded",
        "total": 4999,
    }
    assert (result.event_type, result.url, result.method, result.cancel) == ("payment.succeeded", URL, "POST", False)
    assert result.webhook_id == "msg_2x9"


def test_identity_handler_returns_the_body_unchanged(sandbox: QuickJSSandbox) -> None:
    for event_type in samples.EVENT_TYPES:
        result = run(sandbox, "function handler(w) { return w }", event_type)
        assert result.payload == samples.load(event_type)


def test_handler_may_return_a_new_object(sandbox: QuickJSSandbox) -> None:
    result = run(
        sandbox,
        "const handler = (w) => ({ url: w.url + '?x=1', method: 'PUT', payload: [1, 'two'], headers: { A: 'b' } })",
    )
    assert (result.url, result.method, result.payload, dict(result.headers)) == (
        URL + "?x=1",
        "PUT",
        [1, "two"],
        {"A": "b"},
    )


def test_javascript_coercion_and_undefined_keys(sandbox: QuickJSSandbox) -> None:
    result = run(
        sandbox,
        """function handler(w) {
             w.payload = { a: "4999" / 100, b: (4999 / 100).toFixed(2), c: undefined, d: [undefined],
                           e: new Date(Date.UTC(2025, 0, 2)), f: "1" + 1, g: 0.1 + 0.2, h: NaN };
             return w;
           }""",
    )
    assert result.payload == {
        "a": 49.99,
        "b": "49.99",
        "d": [None],
        "e": "2025-01-02T00:00:00.000Z",
        "f": "11",
        "g": 0.30000000000000004,
        "h": None,
    }


def test_cancel(sandbox: QuickJSSandbox) -> None:
    assert run(sandbox, "function handler(w) { w.cancel = true; return w }").cancel is True
    assert run(sandbox, "function handler(w) { w.cancel = false; return w }").cancel is False
    error = fails(sandbox, "function handler(w) { w.cancel = 'yes'; return w }")
    assert "cancel must be true or false" in str(error)


def test_method_put_allowed_get_rejected(sandbox: QuickJSSandbox) -> None:
    assert run(sandbox, "function handler(w) { w.method = 'PUT'; return w }").method == "PUT"
    for method in ("GET", "put", "DELETE"):
        error = fails(sandbox, f"function handler(w) {{ w.method = '{method}'; return w }}")
        assert '"POST" or "PUT"' in str(error)


def test_headers_must_be_strings(sandbox: QuickJSSandbox) -> None:
    result = run(sandbox, "function handler(w) { w.headers['X-Event'] = w.eventType; return w }")
    assert dict(result.headers) == {"X-Event": "payment.succeeded"}
    for bad in ("{ A: 1 }", "'x'", "null", "{ 'Bad Name': 'v' }", "{ A: 'v\\r\\nInjected: 1' }"):
        error = fails(sandbox, f"function handler(w) {{ w.headers = {bad}; return w }}")
        assert "headers" in str(error)


def test_url_must_stay_an_http_url(sandbox: QuickJSSandbox) -> None:
    assert run(sandbox, "function handler(w) { w.url = 'http://other:8000/x'; return w }").url == "http://other:8000/x"
    for bad in ("'file:///etc/passwd'", "'not a url'", "42"):
        error = fails(sandbox, f"function handler(w) {{ w.url = {bad}; return w }}")
        assert "url must be an absolute http(s) URL" in str(error)


def test_event_type_and_webhook_id_are_read_only(sandbox: QuickJSSandbox) -> None:
    result = run(sandbox, "function handler(w) { w.eventType = 'x.y'; w.webhookId = 'z'; return w }")
    assert result.event_type == "payment.succeeded"
    assert result.webhook_id == "msg_2x9"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("function handler(w) {}", "returned undefined or null"),
        ("function handler(w) { return null }", "returned undefined or null"),
        ("function handler(w) { return 5 }", "returned the number 5"),
        ("function handler(w) { return 'w' }", "returned the string 'w'"),
        ("function handler(w) { return true }", "returned the boolean true"),
        ("function handler(w) { return [w] }", "returned a JSON list"),
        ("function handler(w) { return () => w }", "function or symbol"),
        ("function handler(w) { return 1n }", "not JSON"),
        ("function handler(w) { w.payload = 1n; return w }", "BigInt"),
        ("function handler(w) { w.payload = w; return w }", "circular"),
        ("function handler(w) { return { payload: 1 } }", "has no url, method"),
        ("async function handler(w) { return w }", "async handlers are not supported"),
    ],
)
def test_non_object_or_non_json_result(sandbox: QuickJSSandbox, source: str, expected: str) -> None:
    assert expected in str(fails(sandbox, source))


# --- isolation -----------------------------------------------------------------------------------------

POLLUTE = """
let calls = 0;
function handler(w) {
  calls += 1;
  Object.prototype.polluted = 1;
  Array.prototype.map = function () { return ["hijacked"]; };
  JSON.stringify = function () { return "{}"; };
  globalThis.seen = (globalThis.seen || 0) + 1;
  w.payload = { calls, seen: globalThis.seen };
  return w;
}
"""

PROBE = """
function handler(w) {
  w.payload = {
    polluted: ({}).polluted === undefined,
    map: [1, 2].map((x) => x * 2),
    seen: typeof seen,
    stringify: JSON.stringify({ a: 1 }),
  };
  return w;
}
"""


def test_nothing_leaks_between_runs(sandbox: QuickJSSandbox) -> None:
    assert run(sandbox, POLLUTE).payload == {"calls": 1, "seen": 1}
    assert run(sandbox, POLLUTE).payload == {"calls": 1, "seen": 1}  # the same script starts over too
    assert run(sandbox, PROBE).payload == {"polluted": True, "map": [2, 4], "seen": "undefined", "stringify": '{"a":1}'}


def test_prototype_pollution_does_not_reach_the_result_of_other_scripts(sandbox: QuickJSSandbox) -> None:
    pollute = "Object.prototype.toJSON = function () { return 'owned' }; function handler(w) { return w }"
    assert "returned a JSON str" in str(fails(sandbox, pollute))  # as in Node: its own result is a string
    assert run(sandbox, "function handler(w) { return w }").payload == samples.load("payment.succeeded")


def test_one_instance_can_be_shared_by_threads(sandbox: QuickJSSandbox) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(20):
                result = run(sandbox, f"function handler(w) {{ w.payload = {n}; return w }}")
                assert result.payload == n
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# --- limits ----------------------------------------------------------------------------------------------


def test_time_limit() -> None:
    sandbox = QuickJSSandbox(time_limit_s=0.05)
    error = fails(sandbox, "function handler(w) {\n  while (true) {}\n}")
    assert "time limit" in str(error)
    assert error.line is not None


def test_time_limit_covers_top_level_code_and_to_json() -> None:
    sandbox = QuickJSSandbox(time_limit_s=0.05)
    assert "time limit" in str(fails(sandbox, "for (;;) {}\nfunction handler(w) { return w }"))
    error = fails(sandbox, "function handler(w) { w.payload = { toJSON() { for (;;) {} } }; return w }")
    assert "time limit" in str(error)


def test_memory_limit() -> None:
    sandbox = QuickJSSandbox(memory_limit_bytes=8 * 1024 * 1024)
    error = fails(sandbox, "function handler(w) {\n  const a = [];\n  for (;;) a.push({ n: a.length });\n}")
    assert "memory limit of 8 MiB" in str(error)
    error = fails(sandbox, "function handler(w) { return new ArrayBuffer(1e9) }")
    assert "memory" in str(error)


def test_deep_recursion_is_an_error_not_a_crash(sandbox: QuickJSSandbox) -> None:
    error = fails(sandbox, "function f(n) { return f(n + 1) + 1 }\nfunction handler(w) { return f(0) }")
    assert "call stack" in str(error)
    assert error.line == 1


# --- errors point into the user's script -------------------------------------------------------------------


def test_throw_reports_message_and_line(sandbox: QuickJSSandbox) -> None:
    source = "function handler(w) {\n  const d = w.payload.data;\n  throw new Error('no ' + d.currency);\n}"
    error = fails(sandbox, source)
    assert error.reason == "test.js: Error: no USD"
    assert error.line == 3
    assert str(error) == "test.js: Error: no USD (line 3)"


def test_type_error_in_a_helper_reports_the_helper_line(sandbox: QuickJSSandbox) -> None:
    source = "function cents(p) {\n  return p.missing.amount;\n}\nfunction handler(w) {\n  return cents(w.payload);\n}"
    error = fails(sandbox, source)
    assert "TypeError" in error.reason
    assert "missing" in error.reason or "amount" in error.reason
    assert error.line == 2


def test_throwing_a_non_error(sandbox: QuickJSSandbox) -> None:
    error = fails(sandbox, "function handler(w) { throw 'nope' }")
    assert error.reason == "test.js: uncaught exception: nope"


def test_syntax_error_reports_line(sandbox: QuickJSSandbox) -> None:
    error = fails(sandbox, "function handler(w) {\n  const x = ;\n  return w;\n}")
    assert "SyntaxError" in error.reason
    assert error.line == 2


@pytest.mark.parametrize("source", ["", "function transform(w) { return w }", "var handler = 5"])
def test_missing_handler(sandbox: QuickJSSandbox, source: str) -> None:
    error = fails(sandbox, source)
    assert "must define `function handler(webhook)" in str(error)


def test_arrow_and_const_handlers_are_found(sandbox: QuickJSSandbox) -> None:
    assert run(sandbox, "const handler = (w) => { w.payload = 1; return w }").payload == 1
    assert run(sandbox, "let handler = function (w) { w.payload = 2; return w }").payload == 2


# --- no host access ------------------------------------------------------------------------------------------


def test_only_ecmascript_globals(sandbox: QuickJSSandbox) -> None:
    names = ["require", "process", "std", "os", "module", "exports", "fetch", "XMLHttpRequest", "print", "python"]
    probe = "function handler(w) { w.payload = { " + ", ".join(f"{n}: typeof {n}" for n in names) + " }; return w }"
    assert run(sandbox, probe).payload == dict.fromkeys(names, "undefined")


@pytest.mark.parametrize(
    "source",
    [
        "import * as std from 'std';\nfunction handler(w) { return w }",
        "import fs from 'fs';\nfunction handler(w) { return w }",
    ],
)
def test_static_import_is_a_syntax_error(sandbox: QuickJSSandbox, source: str) -> None:
    assert "SyntaxError" in fails(sandbox, source).reason


def test_dynamic_import_loads_nothing(sandbox: QuickJSSandbox) -> None:
    result = run(
        sandbox,
        """function handler(w) {
             const p = import('std');
             w.payload = { promise: p instanceof Promise };
             return w;
           }""",
    )
    assert result.payload == {"promise": True}
    # Pending jobs are never run, and the context is gone afterwards; a module loader does not exist at all:
    error = fails(sandbox, "let m;\nimport('os').then((x) => { m = x });\nfunction handler(w) { return m.exec() }")
    assert "TypeError" in error.reason


def test_constructor_limits() -> None:
    with pytest.raises(ValueError, match="time_limit_s"):
        QuickJSSandbox(time_limit_s=0)
    with pytest.raises(ValueError, match="memory_limit_bytes"):
        QuickJSSandbox(memory_limit_bytes=1000)


# --- loading scripts (headrace.transform.scripts) ------------------------------------------------------------


def test_list_builtins_names_the_shipped_templates() -> None:
    names = list_builtins()
    assert names == sorted(names)
    assert "payment" in names


def test_load_builtin_runs_in_the_sandbox(sandbox: QuickJSSandbox, tmp_path: Path) -> None:
    script = load_script("builtin:payment", tmp_path)
    assert script.name == "builtin:payment"
    assert "function handler" in script.source
    result = sandbox.run(script, webhook("payment.succeeded"))
    assert isinstance(result.payload, dict)


def test_unknown_builtin_lists_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown built-in transformation 'builtin:paymnet'.*builtin:payment"):
        load_script("builtin:paymnet", tmp_path)


def test_load_file_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "mine.js").write_text("function handler(w) { return w }\n")
    script = load_script("hooks/mine.js", tmp_path)
    assert script == Script("hooks/mine.js", "function handler(w) { return w }\n")
    assert load_script(str(tmp_path / "hooks" / "mine.js"), Path("/nonexistent")).source == script.source


def test_missing_or_wrong_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'nope\.js' not found \(looked at .*nope\.js\)"):
        load_script("nope.js", tmp_path)
    (tmp_path / "handler.ts").write_text("")
    with pytest.raises(ValueError, match=r"not a \.js file.*builtin:payment"):
        load_script("handler.ts", tmp_path)
    (tmp_path / "dir.js").mkdir()
    with pytest.raises(ValueError, match="not found"):
        load_script("dir.js", tmp_path)
    with pytest.raises(ValueError, match="empty transformation"):
        load_script(" ", tmp_path)


def test_console_exists_and_does_nothing(sandbox: QuickJSSandbox) -> None:
    source = "function handler(w) { console.log('debug', w); console.error(1); w.payload = typeof console; return w }"
    assert run(sandbox, source).payload == "object"


def test_handler_sees_the_origin_read_only(sandbox: QuickJSSandbox) -> None:
    """`webhook.origin` says whether Dodo sent the event or `headrace reconcile` synthesized it; like
    `eventType`, what the handler writes into it is ignored."""
    source = """function handler(webhook) {
                  webhook.payload = {origin: webhook.origin};
                  webhook.origin = "forged";
                  return webhook;
                }"""
    real = sandbox.run(Script("test.js", source), webhook("payment.succeeded"))
    synthesized = sandbox.run(
        Script("test.js", source), dataclasses.replace(webhook("payment.succeeded"), origin="reconcile")
    )
    assert (real.payload, real.origin) == ({"origin": "dodo"}, "dodo")
    assert (synthesized.payload, synthesized.origin) == ({"origin": "reconcile"}, "reconcile")
