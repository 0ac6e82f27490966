"""What headrace says about itself: log lines (logs.py), Prometheus metrics (metrics.py) and process stats
(procstats.py). Plain leaves: they import config and models at most."""
