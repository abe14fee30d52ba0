"""The engine's HTTP client is the project's one client: `catalog.sources.http.make_client` (proxies, CA bundle,
timeouts, retries, user agent), re-exported here for library callers that import it from the engine."""

from catalog.sources.http import make_client

__all__ = ["make_client"]
