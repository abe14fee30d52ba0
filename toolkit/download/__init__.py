"""The download manager: `ensure_variant(manifest, variant)` puts a verified snapshot in the store.

Layers: plan.py (pure decisions), state.py (resume state), diskio.py
(positional I/O, the prefix hasher), transfer.py (one file), manager.py (a variant's files and the
store), api.py (the calls toolkit.api makes). Progress for people is drawn by the CLI (toolkit/cli/progress.py).
This file imports nothing: importing `toolkit.download.progress` must not pull in httpx.
"""
