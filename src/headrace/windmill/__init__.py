"""Windmill: run-URL parsing, the job API client, and the emulator used by tests and demos."""
