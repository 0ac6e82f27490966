"""headrace: Dodo Payments webhooks into Windmill workflow runs, verified, durable and exactly once."""

__version__ = "0.2.0"
