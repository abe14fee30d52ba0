"""Shared test helpers: tiny checkpoints, a numpy reference forward, and pytest fixtures."""
