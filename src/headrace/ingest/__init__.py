"""Ingest stage: Standard Webhooks verification and the HTTP endpoint."""
