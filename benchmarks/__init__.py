"""Benchmarks of tango_groups against its anchors: ``python -m benchmarks.run`` (see ``run``)."""
