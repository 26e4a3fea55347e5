// The service at a glance: every worker's health, breaker, sessions and KV cache from
// /coordinator/health/workers, the totals from /coordinator/health and the service-wide
// token rate from /metrics, refreshed every second while the page is visible.

const EVERY_MS = 1000;
const HISTORY = 60; // samples kept per worker for its sparkline
const UNITS = ["B", "KB", "MB", "GB", "TB"];

export function bytes(n) {
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${UNITS[i]}`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function meter(label, used, capacity, text) {
  const fraction = capacity > 0 ? Math.min(1, used / capacity) : 0;
  const row = el("div", "meter");
  row.append(el("span", "meter-label", label), el("span", "meter-value", text));
  const bar = el("div", "track");
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-label", label);
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", String(capacity));
  bar.setAttribute("aria-valuenow", String(used));
  bar.setAttribute("aria-valuetext", text);
  const fill = el("span", fraction > 0.85 ? "fill hot" : "fill");
  fill.style.width = `${(fraction * 100).toFixed(1)}%`;
  bar.append(fill);
  row.append(bar);
  return row;
}

function sparkline(values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${HISTORY - 1} 20`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "spark");
  svg.setAttribute("aria-hidden", "true");
  const top = Math.max(1, ...values);
  const x0 = HISTORY - values.length;
  const points = values.map((v, i) => `${x0 + i},${(19 - (v / top) * 18).toFixed(2)}`);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

function workerCard(w, history) {
  const state = !w.alive ? "down" : w.breaker !== "closed" ? "tripped" : w.healthy ? "ok" : "down";
  const li = el("li", `worker ${state}`);
  li.dataset.workerId = w.worker_id;
  li.dataset.sessions = String(w.sessions);
  const head = el("div", "worker-head");
  const health = !w.alive ? "no heartbeat" : w.healthy ? "healthy" : "out of rotation";
  head.append(
    el("span", "dot", ""),
    el("strong", "worker-id", w.worker_id),
    el("span", "health", health),
    el("span", `badge breaker-${w.breaker}`, `breaker ${w.breaker.replace("_", "-")}`),
  );
  const sessions = `${w.sessions} / ${w.max_sessions}`;
  const kv = `${bytes(w.kv_used_bytes)} / ${bytes(w.kv_capacity_bytes)}`;
  const foot = el(
    "p",
    "muted small",
    `model ${w.model} · heartbeat ${w.last_heartbeat_s.toFixed(1)} s ago · ctx ${w.n_ctx} · ${w.url}`,
  );
  li.append(
    head,
    meter("sessions", w.sessions, w.max_sessions, sessions),
    meter("KV cache", w.kv_used_bytes, w.kv_capacity_bytes, kv),
    sparkline(history),
    foot,
  );
  return li;
}

function term(list, name, value) {
  list.append(el("dt", "", name), el("dd", "", value));
}

/** Poll the coordinator and keep `els` up to date; `onWorkers(workers)` after each poll. */
export function watchService(els, onWorkers) {
  const history = new Map();
  let timer = 0;
  let running = false;
  let again = false;
  let lastTokens = null;

  async function json(path) {
    const response = await fetch(path, { cache: "no-store" });
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.json();
  }

  async function tokenRate() {
    try {
      const response = await fetch("metrics", { cache: "no-store" });
      if (!response.ok) return null;
      const match = (await response.text()).match(/^ishan_infer_tokens_generated_total (\S+)$/m);
      if (!match) return null;
      const now = { t: performance.now(), total: Number(match[1]) };
      const before = lastTokens;
      lastTokens = now;
      if (!before || now.t <= before.t) return null;
      return { rate: ((now.total - before.total) * 1000) / (now.t - before.t), total: now.total };
    } catch {
      return null;
    }
  }

  function show(workers, health, tokens) {
    const cards = workers.map((w) => {
      const past = history.get(w.worker_id) || [];
      past.push(w.sessions);
      if (past.length > HISTORY) past.shift();
      history.set(w.worker_id, past);
      return workerCard(w, past);
    });
    els.workers.replaceChildren(...cards);
    if (!workers.length) els.workers.append(el("li", "worker none", "No worker has sent a heartbeat yet."));
    const healthy = workers.filter((w) => w.healthy).length;
    const totals = document.createDocumentFragment();
    term(totals, "workers", `${healthy} of ${workers.length} healthy`);
    term(totals, "sessions", `${health.sessions} / ${health.limits.max_sessions}`);
    term(totals, "KV in use", `${bytes(health.kv_used_bytes)} / ${bytes(health.limits.max_kv_bytes)}`);
    if (tokens) term(totals, "generated, all clients", `${tokens.rate.toFixed(1)} tok/s`);
    els.totals.replaceChildren(totals);
    els.status.textContent = healthy
      ? `● ${healthy}/${workers.length} worker${workers.length === 1 ? "" : "s"} healthy`
      : workers.length
        ? "● no healthy worker"
        : "● no workers yet";
    els.status.dataset.state = document.body.dataset.service = healthy ? "ok" : "down";
    els.updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  async function poll() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    try {
      const [workers, health, tokens] = await Promise.all([
        json("coordinator/health/workers"),
        json("coordinator/health"),
        tokenRate(),
      ]);
      show(workers, health, tokens);
      onWorkers(workers);
    } catch (error) {
      els.status.textContent = "● coordinator unreachable";
      els.status.dataset.state = document.body.dataset.service = "down";
      els.updated.textContent = `cannot reach the coordinator (${error.message}); retrying`;
    } finally {
      running = false;
      if (again) {
        again = false;
        poll();
      } else if (!document.hidden) {
        timer = setTimeout(poll, EVERY_MS);
      }
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });
  poll();
  return { refresh: poll };
}
