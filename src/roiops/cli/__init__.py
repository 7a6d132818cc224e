"""The ``roiops`` command line (docs/cli.md): ``roiops demo``, ``roiops crop``, ``roiops bench``.

The entry point is :func:`roiops.cli.main.main`; docs/cli.md is the user guide.
"""
