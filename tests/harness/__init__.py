"""The one harness of the tests and the benchmarks: what both start, wait for and stop.

- `ports`: `free_port`, a port of 127.0.0.1 that nothing listens on;
- `waiting`: `wait_until` (a condition, a deadline, a clear message) and what it waits for
  (a port that answers, a URL that answers);
- `processes`: `stop_process` (terminate, wait, kill);
- `browser`: `Browser`, headless Chromium driven by Selenium;
- `redis_server`: `RedisServer`, a real `redis-server` on a free port;
- `mongo_server`: `secantus_server`, a real MongoDB-wire server (`secantusd-py`) on port 0;
- `prometheus`: `Prometheus`, a real `prometheus` scraping the given targets every second;
- `nginx`: `Nginx`, a real nginx balancing round robin over the given upstreams.

Tests import it as `tests.harness.NAME`; benchmarks too, run from the repository root as
`python -m bench.NAME` (the root is then on `sys.path`; nothing edits it).
"""
