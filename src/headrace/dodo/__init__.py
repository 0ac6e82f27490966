"""Dodo Payments' side: its webhook event types and sample bodies (samples/), the Standard Webhooks signatures
it sends (signature.py), its REST API (api.py, over aiohttp, not the SDK), the kinds of objects it lists
(kinds.py), event keys (keys.py), reconcile against its API (reconcile.py) and a stand-in for it on loopback
(standin.py, for tests and `headrace dev dodo`).

The 48 webhook event types are the bundled samples' (`headrace.dodo.samples.EVENT_TYPES`): one list, kept where
the sample bodies are. A new event type is a sample in samples/data/ (and any variants in samples/variants/).
"""
