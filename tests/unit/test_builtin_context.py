"""Built-in templates run in a kept, frozen context: same results as a fresh context, and no leaks."""

from pathlib import Path

import pytest

from headrace.dodo import samples
from headrace.transform import Script, WebhookObject
from headrace.transform.quickjs_sandbox import QuickJSSandbox
from headrace.transform.scripts import list_builtins, load_script

URL = "https://w.example/api/w/acme/jobs/run/f/f/dodo/on_payment"


@pytest.mark.parametrize("name", list_builtins())
def test_kept_context_gives_the_fresh_context_result_on_every_sample(name):
    sandbox = QuickJSSandbox()
    kept = load_script(f"builtin:{name}", Path.cwd())
    fresh = Script(name=f"copy-of-{name}.js", source=kept.source)  # not builtin: a new context per run
    for event_type in samples.EVENT_TYPES:
        webhook = WebhookObject(event_type, samples.load(event_type), URL, webhook_id=f"msg_{event_type}")
        assert sandbox.evaluate(kept, webhook) == sandbox.evaluate(fresh, webhook), event_type


def test_a_kept_context_cannot_carry_state_between_runs():
    sandbox = QuickJSSandbox()
    script = Script(
        name="builtin:probe",
        source="""
        function handler(webhook) {
          const before = {proto: ({}).polluted === undefined, global: typeof globalThis.counter === "undefined",
                          map: [1].map(x => x + 1)[0] === 2};
          try { Object.prototype.polluted = 1; } catch (e) {}
          try { globalThis.counter = 1; } catch (e) {}
          try { Array.prototype.map = function () { return [0]; }; } catch (e) {}
          webhook.payload = before;
          return webhook;
        }""",
    )
    webhook = WebhookObject("payment.succeeded", {}, URL)
    for _ in range(3):
        assert sandbox.run(script, webhook).payload == {"proto": True, "global": True, "map": True}
