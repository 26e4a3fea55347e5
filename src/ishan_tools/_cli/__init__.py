"""Pieces every system's `cli.py` shares: options, output, the server launcher, the default group.

These modules sit below each system's CLI and import no system. Only `server` is also used by
libraries (the infer coordinator and worker, the players API), and it imports no Typer.
"""
