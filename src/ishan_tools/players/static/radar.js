// A StatsBomb-style radar in plain SVG: six axes, rings at percentiles 25/50/75/100, one
// polygon per series. Each vertex carries its raw rating; hovering or focusing it shows them.

const SVG = "http://www.w3.org/2000/svg";
const RADIUS = 140;

function node(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.append(element);
  return element;
}

function point(axis, count, percentile) {
  const angle = -Math.PI / 2 + (2 * Math.PI * axis) / count;
  const r = (RADIUS * Math.max(percentile, 0)) / 100;
  return [r * Math.cos(angle), r * Math.sin(angle)];
}

const ordinal = (n) => {
  const whole = Math.round(n);
  const tens = whole % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ["th", "st", "nd", "rd"][whole % 10] || "th";
  return `${whole}${suffix}`;
};

/**
 * Draw `series` ([{name, kind, values: {attr: {value, percentile}}}]) on `axes`
 * ([{key, label}]) into `svg`; `tip` is the tooltip element, `groupName` e.g. "midfielders".
 */
export function drawRadar(svg, tip, axes, series, groupName) {
  svg.replaceChildren();
  const count = axes.length;
  const rings = node("g", { class: "rings" }, svg);
  for (const level of [25, 50, 75, 100]) {
    node("circle", { r: (RADIUS * level) / 100, class: level === 50 ? "ring mid" : "ring" }, rings);
    if (level < 100) { // between the first two spokes, clear of the vertices
      const [x, y] = point(0.5, count, level);
      node("text", { x: x + 3, y: y - 3, class: "ring-label" }, rings).textContent = level;
    }
  }
  axes.forEach((axis, i) => {
    const [x, y] = point(i, count, 100);
    node("line", { x1: 0, y1: 0, x2: x, y2: y, class: "spoke" }, rings);
    const [lx, ly] = point(i, count, 119);
    const anchor = Math.abs(lx) < 1 ? "middle" : lx > 0 ? "start" : "end";
    const label = node("text", { x: lx, y: ly, "text-anchor": anchor, class: "axis-label" }, svg);
    label.textContent = axis.label;
    const first = series[0].values[axis.key];
    if (first) {
      const sub = node("text", { x: lx, y: ly + 15, "text-anchor": anchor, class: "axis-value" }, svg);
      sub.textContent = `${first.value} · ${ordinal(first.percentile)}`;
    }
  });
  for (const one of [...series].reverse()) {
    const present = axes.map((axis, i) => [i, one.values[axis.key]]).filter(([, v]) => v);
    const shape = present.map(([i, v]) => point(i, count, v.percentile).join(",")).join(" ");
    const group = node("g", { class: `series ${one.kind}`, "data-name": one.name }, svg);
    node(present.length > 2 ? "polygon" : "polyline", { points: shape, class: "area" }, group);
    for (const [i, v] of present) {
      const [x, y] = point(i, count, v.percentile);
      const text = `${axes[i].label}: ${one.name} ${v.value} (${ordinal(v.percentile)} percentile of ${groupName})`;
      const dot = node("circle", { cx: x, cy: y, r: 5, class: "vertex", tabindex: 0, "aria-label": text }, group);
      dot.dataset.attribute = axes[i].key;
      dot.dataset.value = v.value;
      node("title", {}, dot).textContent = text;
      const show = () => showTip(svg, tip, dot, axes[i], series);
      dot.addEventListener("mouseenter", show);
      dot.addEventListener("focus", show);
      dot.addEventListener("mouseleave", () => (tip.hidden = true));
      dot.addEventListener("blur", () => (tip.hidden = true));
    }
  }
}

function showTip(svg, tip, dot, axis, series) {
  const lines = series
    .filter((one) => one.values[axis.key])
    .map((one) => {
      const v = one.values[axis.key];
      return `<span class="${one.kind}">${escape(one.name)}</span> <b>${v.value}</b> <i>${ordinal(v.percentile)} pct</i>`;
    });
  tip.innerHTML = `<strong>${escape(axis.label)}</strong><br>${lines.join("<br>")}`;
  const box = svg.getBoundingClientRect();
  const spot = dot.getBoundingClientRect();
  tip.style.left = `${spot.left - box.left + spot.width / 2}px`;
  tip.style.top = `${spot.top - box.top}px`;
  tip.hidden = false;
}

export function escape(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
