"""Fixtures of the filter service's integration tests (``tests.integration.filter.rig``)."""

from tests.integration.filter.rig import rig_factory

__all__ = ["rig_factory"]
