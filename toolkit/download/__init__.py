"""The download manager: `ensure_variant(manifest, variant)` puts a verified snapshot in the store.

Layers: plan.py (pure decisions), state.py (resume state), http.py (client settings), diskio.py
(positional I/O, the prefix hasher), transfer.py (one file), manager.py (a variant's files and the
store), api.py (what the CLI and the runtime call), render.py (progress for people).
"""

from toolkit.download.api import DownloadPlan, ensure_variant, plan_variant
from toolkit.download.config import DownloadConfig
from toolkit.download.progress import Progress

__all__ = ["DownloadConfig", "DownloadPlan", "Progress", "ensure_variant", "plan_variant"]
