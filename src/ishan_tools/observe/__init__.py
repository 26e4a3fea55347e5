"""Prometheus exposition shared by the systems (crawl, migrate, infer): below all three.

`config` is the `--metrics-*` options' settings (no third-party import, so a command-line
module can name it at import time); `exporter` holds what every `/metrics` needs (the text
format's content type, one-sample gauges, collectors read at scrape time, the label cap,
the server thread of `--metrics-port`); `multiprocess` sums the figures of worker processes
(migrate's `--workers N`) into the one port their parent serves.
"""
