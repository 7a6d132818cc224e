"""The ``roiops`` command line (API.md §5): ``roiops demo``, ``roiops crop``, ``roiops bench``.

The entry point is :func:`roiops.cli.main.main`; docs/cli.md is the user guide.
"""
