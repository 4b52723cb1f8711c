"""``WorkGrinder`` at leasepool 0.1.3's module path ``leasepool.grinder``."""

from __future__ import annotations

import logging

from leasepool._grinder import WorkGrinder
from leasepool._manager import LeasedExecutorManager

logger = logging.getLogger(__name__)
"""0.1.3 had a module logger here; the grinder itself logs on ``leasepool.grinder``."""

__all__ = ["LeasedExecutorManager", "WorkGrinder", "logger"]
