"""Serve or export the local store in the Hub-compatible subset that catalog.sources.mirror reads."""
