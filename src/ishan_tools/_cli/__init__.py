"""Pieces every system's `cli.py` shares: options, output, the extras check, the default group.

These modules sit below each system's CLI and import no system. Only CLI modules import them
(an import-linter contract says which); library code uses `ishan_tools._server` instead.
"""
