"""Background and admin work around the two stages: the periodic loop helper and the loops it runs (retention,
the search indexer, outage detection, scheduled reconciling), bulk replay, config reload and the pid file."""
