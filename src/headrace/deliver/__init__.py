"""Delivery stage: retry maths (schedule), response classification and the worker loop."""
