"""Alert rules; the module moves into this package, to be split along its banner comments."""

from kpi_core.alerts.detect import *  # noqa: F403 - a step of the split, gone with the next commit
