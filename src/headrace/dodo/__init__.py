"""Dodo Payments' side: its REST API (api.py, over aiohttp, not the SDK), the kinds of objects it lists
(kinds.py) and a stand-in for it on loopback (standin.py, for tests and `headrace dev dodo`).

The 48 webhook event types are the bundled samples' (`headrace.dodo.samples.EVENT_TYPES`): one list, kept where
the sample bodies are.
"""
