"""``python -m roiops.cli`` runs the ``roiops`` command."""
import sys

from .main import main

sys.exit(main())
