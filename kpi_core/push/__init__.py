"""Pushing alerts out; the module moves into this package, to be split along its banners."""

from kpi_core.push.config import *  # noqa: F403 - a step of the split, gone with the next commit
