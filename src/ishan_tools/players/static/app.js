// The scouting page: the state lives in the URL; every change asks POST players/similar and
// redraws the table; picking a row draws the radar and the card. No framework, no build step.
import { drawRadar, escape } from "./radar.js";

const ATTRIBUTES = ["pace", "shooting", "passing", "dribbling", "defending", "physic"];
const SHORT = { pace: "PAC", shooting: "SHO", passing: "PAS", dribbling: "DRI", defending: "DEF", physic: "PHY" };
const LISTS = ["plays", "league", "club", "nationality"];
const NUMBERS = ["min_age", "max_age", "min_overall", "max_value"];
const DEFAULT_RATINGS = { pace: 75, shooting: 72, passing: 85, dribbling: 80, defending: 65, physic: 70 };
const $ = (selector) => document.querySelector(selector);

let state = fromURL(location.search);
let vocabulary = { role_from: "first", positions: {} };
let lastProfile = null; // the profile of the last answer (the liked player's ratings in `like` mode)
let likedName = "";
let pushNext = true; // the next change starts a new history entry
let urlTimer = 0;
let generation = 0;
let pending = null;

// ---- state <-> URL ----
function defaults() {
  const lists = Object.fromEntries(LISTS.map((name) => [name, []]));
  const numbers = Object.fromEntries(NUMBERS.map((name) => [name, null]));
  return { like: null, position: "midfielder", ratings: { ...DEFAULT_RATINGS }, weights: {}, top: 10,
    foot: "", role_from: "", sel: null, ...lists, ...numbers };
}

function fromURL(search) {
  const params = new URLSearchParams(search);
  const s = defaults();
  const number = (key) => (params.has(key) && params.get(key) !== "" ? Number(params.get(key)) : null);
  if (params.has("like") || params.has("position")) {
    s.like = number("like");
    s.position = params.get("position") || s.position;
    s.ratings = {};
    for (const name of ATTRIBUTES) if (params.has(name)) s.ratings[name] = number(name);
  }
  for (const name of [...ATTRIBUTES, "role"]) if (params.has(`w.${name}`)) s.weights[name] = number(`w.${name}`);
  for (const name of NUMBERS) s[name] = number(name);
  for (const name of LISTS) s[name] = params.getAll(name);
  s.top = number("top") || 10;
  s.foot = params.get("foot") || "";
  s.role_from = params.get("role_from") || "";
  s.sel = number("sel");
  return s;
}

function toURL(s) {
  const params = new URLSearchParams();
  if (s.like) params.set("like", s.like);
  else {
    params.set("position", s.position);
    for (const name of ATTRIBUTES) if (name in s.ratings) params.set(name, s.ratings[name]);
  }
  for (const [name, weight] of Object.entries(s.weights)) params.set(`w.${name}`, weight);
  if (s.top !== 10) params.set("top", s.top);
  for (const name of NUMBERS) if (s[name] !== null) params.set(name, s[name]);
  if (s.foot) params.set("foot", s.foot);
  for (const name of LISTS) for (const value of s[name]) params.append(name, value);
  if (s.role_from) params.set("role_from", s.role_from);
  if (s.sel) params.set("sel", s.sel);
  return `?${params}`;
}

function requestBody(s) {
  const body = { top: s.top, explain: true };
  if (s.like) body.like = s.like;
  else Object.assign(body, { position: s.position }, s.ratings);
  for (const name of NUMBERS) if (s[name] !== null) body[name] = s[name];
  if (s.foot) body.foot = s.foot;
  for (const name of LISTS) if (s[name].length) body[name] = s[name];
  if (Object.keys(s.weights).length) body.weights = s.weights;
  if (s.role_from) body.role_from = s.role_from;
  return body;
}

// One change of the page state, then the results. The URL follows: each committed change
// (a release, a click, Enter) ends a history entry; while a slider is dragged or a number
// typed, the entry is rewritten at most every 150 ms (Chrome ignores more than 200 URL
// updates in 10 seconds).
function change(mutate, { commit = true } = {}) {
  mutate(state);
  if (commit) commitURL();
  else if (!urlTimer) urlTimer = setTimeout(writeURL, 150);
  refresh();
}

function writeURL() {
  clearTimeout(urlTimer);
  urlTimer = 0;
  const url = toURL(state);
  if (url === location.search) return;
  history[pushNext ? "pushState" : "replaceState"](null, "", url);
  pushNext = false;
}

function commitURL() {
  writeURL();
  pushNext = true;
}

function leaveLikeMode(s) {
  if (!s.like || !lastProfile) return;
  const { role, ...ratings } = lastProfile;
  Object.assign(s, { like: null, position: role, ratings });
}

// ---- talking to the API ----
async function api(path, options = {}) {
  const response = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = data.detail;
    const text = Array.isArray(detail)
      ? detail.map((e) => `${e.loc.slice(1).join(".")}: ${e.msg}`).join("; ")
      : detail || response.statusText;
    throw new Error(text);
  }
  return data;
}

async function refresh() {
  const mine = ++generation;
  const table = $("#results");
  table.setAttribute("aria-busy", "true");
  pending?.abort();
  pending = new AbortController();
  try {
    const answer = await api("players/similar", {
      method: "POST", body: JSON.stringify(requestBody(state)), signal: pending.signal,
    });
    if (mine !== generation) return;
    lastProfile = answer.profile;
    showMessage("");
    renderResults(answer);
  } catch (error) {
    if (error.name === "AbortError" || mine !== generation) return;
    showMessage(error.message, "error");
    renderResults({ matches: [], profile: null });
  }
  syncControls();
  loadDetail();
  table.removeAttribute("aria-busy");
  table.dataset.generation = mine;
  document.dispatchEvent(new CustomEvent("results", { detail: { generation: mine } }));
}

// ---- the results table ----
const money = (euros) => (euros == null ? "" : euros >= 1e6 ? `€${+(euros / 1e6).toFixed(1)}M` : `€${Math.round(euros / 1e3)}K`);
const tier = (rating) => (rating >= 80 ? 5 : rating >= 70 ? 4 : rating >= 60 ? 3 : rating >= 50 ? 2 : 1);

function explanationHTML(text) {
  return text.split(", ").map((part) => {
    const sign = part.match(/[+-]\d/) ? (part.includes("+") ? "up" : "down") : "";
    return `<span class="why-part ${sign}">${escape(part.replace("-", "−"))}</span>`;
  }).join("");
}

function renderResults({ matches, profile }) {
  const describe = profile
    ? `${profile.role} · ${ATTRIBUTES.filter((a) => a in profile).map((a) => `${SHORT[a]} ${profile[a]}`).join(" ")}`
    : "";
  $("#results-title").textContent = state.like ? `Most like ${likedName || `#${state.like}`}` : "Most similar to the profile";
  $("#results-meta").textContent = profile ? `${describe} · role from ${effectiveRule()} position` : "";
  const rows = matches.map((m, i) => `
    <tr data-id="${m.sofifa_id}" tabindex="0" aria-selected="${m.sofifa_id === state.sel}">
      <td class="rank">${i + 1}</td>
      <td class="name"><span class="player">${escape(m.short_name)}</span><span class="why">${explanationHTML(m.explanation)}</span></td>
      <td class="club">${escape(m.club_name)}<span class="sub">${escape(m.league_name)}</span></td><td>${escape(m.nationality_name)}</td>
      <td class="num">${m.age ?? ""}</td><td class="num ovr">${m.overall ?? ""}</td><td class="num">${money(m.value_eur)}</td>
      <td class="pos">${escape(m.player_positions)}</td>
      ${ATTRIBUTES.map((a) => `<td class="num"><span class="rating t${tier(m[a])}">${m[a]}</span></td>`).join("")}
      <td class="num score">${m.score.toFixed(4)}</td>
    </tr>`);
  const focused = document.activeElement?.closest?.("#results tr")?.dataset.id;
  $("#results tbody").innerHTML = rows.join("");
  if (focused) $(`#results tr[data-id="${focused}"]`)?.focus(); // keep the keyboard's place
  if (!matches.length && profile) showMessage("No player matches these filters.", "empty");
  $("#cli").textContent = commandLine(state);
}

function effectiveRule() {
  return state.role_from || vocabulary.role_from;
}

// ---- the same query for the CLI ----
function quote(text) {
  return /^[\w.,=:+-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

function commandLine(s) {
  const args = ["ishan", "players"];
  if (s.like) args.push("like", s.like);
  else {
    args.push("--position", s.position);
    for (const name of ATTRIBUTES) if (name in s.ratings) args.push(`--${name}`, s.ratings[name]);
  }
  args.push("--top", s.top);
  const flags = { min_age: "--min-age", max_age: "--max-age", min_overall: "--min-overall", max_value: "--max-value" };
  for (const name of NUMBERS) if (s[name] !== null) args.push(flags[name], s[name]);
  if (s.foot) args.push("--foot", s.foot);
  for (const name of LISTS) for (const value of s[name]) args.push(`--${name}`, value);
  for (const [name, weight] of Object.entries(s.weights)) args.push("--weight", `${name}=${weight}`);
  if (effectiveRule() !== "first") args.push("--role-from", effectiveRule());
  if (vocabulary.data && !vocabulary.data.startsWith("embedded")) args.push("--data", vocabulary.data);
  args.push("--explain");
  return args.map((a) => quote(String(a))).join(" ");
}

// ---- the selected player: radar and card ----
let detailFor = "";
const cards = new Map(); // a player's card under a role rule does not change: ask once

function card(id, rule) {
  const key = `${id}?role_from=${rule}`;
  if (!cards.has(key)) cards.set(key, api(`players/${key}`).catch((error) => { cards.delete(key); throw error; }));
  return cards.get(key);
}

async function loadDetail() {
  const box = $("#detail");
  if (!state.sel) {
    box.hidden = true;
    detailFor = "";
    return;
  }
  const rule = effectiveRule();
  const profile = lastProfile || {};
  const params = new URLSearchParams({ role_from: rule });
  for (const name of ATTRIBUTES) if (name in profile) params.set(name, profile[name]);
  const key = `${state.sel}?${params}`;
  if (key === detailFor) return;
  detailFor = key;
  try {
    const [ranks, player] = await Promise.all([
      api(`players/${state.sel}/percentiles?${params}`),
      card(state.sel, rule),
    ]);
    if (key !== detailFor) return;
    renderDetail(ranks, player);
    box.hidden = false;
    box.dataset.player = state.sel;
    document.dispatchEvent(new CustomEvent("detail", { detail: { player: state.sel } }));
  } catch (error) {
    showMessage(error.message, "error");
  }
}

function renderDetail(ranks, player) {
  const group = `${ranks.group}s`;
  $("#detail-title").textContent = player.short_name;
  $("#detail-group").textContent = `percentile ranks among ${ranks.group_size.toLocaleString("en")} ${group} (role from ${ranks.role_from} position)`;
  const profileName = state.like ? likedName || "liked player" : "profile";
  const series = [{ name: player.short_name, kind: "player", values: ranks.player }];
  if (Object.keys(ranks.profile).length) series.push({ name: profileName, kind: "profile", values: ranks.profile });
  const axes = ATTRIBUTES.map((key) => ({ key, label: key[0].toUpperCase() + key.slice(1) }));
  drawRadar($("#radar"), $("#tip"), axes, series, group);
  $("#legend").innerHTML = series.map((one) => `<span class="key ${one.kind}">${escape(one.name)}</span>`).join("");
  const cell = (v) => (v ? `<td>${v.value}</td><td class="muted">${Math.round(v.percentile)}</td>` : "<td>–</td><td></td>");
  $("#ranks").innerHTML = `<thead><tr><th></th><th colspan="2" class="player">${escape(player.short_name)}</th><th colspan="2" class="profile">${escape(profileName)}</th></tr>
    <tr class="muted"><th></th><th>rating</th><th>pct</th><th>rating</th><th>pct</th></tr></thead><tbody>${
    axes.map((a) => `<tr><th>${SHORT[a.key]}</th>${cell(ranks.player[a.key])}${cell(ranks.profile[a.key])}</tr>`).join("")}</tbody>`;
  const stars = (n) => (n ? "★".repeat(n) : "");
  const fields = [
    ["Full name", player.long_name], ["Club", player.club_name], ["League", player.league_name],
    ["Nation", player.nationality_name], ["Age", player.age],
    ["Overall", `${player.overall} (potential ${player.potential ?? "?"})`],
    ["Positions", `${player.player_positions} → ${player.role}`],
    ["Value", money(player.value_eur)], ["Wage", player.wage_eur ? `${money(player.wage_eur)}/wk` : ""],
    ["Contract", player.club_contract_valid_until], ["Height", player.height_cm && `${player.height_cm} cm`],
    ["Weight", player.weight_kg && `${player.weight_kg} kg`], ["Foot", player.preferred_foot],
    ["Weak foot", stars(player.weak_foot)], ["Skill moves", stars(player.skill_moves)], ["Work rate", player.work_rate],
  ];
  $("#card").innerHTML = fields.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `<div><dt>${k}</dt><dd>${escape(v)}</dd></div>`).join("");
  $("#like-this").dataset.id = player.sofifa_id;
  $("#like-this").dataset.name = player.short_name;
}

function select(id) {
  change((s) => (s.sel = s.sel === id ? null : id));
}

// ---- the controls ----
function buildControls() {
  $("#ratings").innerHTML = ATTRIBUTES.map((a) => `
    <div class="rating-row" data-attribute="${a}">
      <input type="checkbox" id="use-${a}" aria-label="use ${a}">
      <label for="r-${a}">${a[0].toUpperCase() + a.slice(1)}</label>
      <input type="range" id="r-${a}" min="0" max="99" step="1">
      <output id="o-${a}" for="r-${a}"></output>
      <input type="number" class="weight" id="w-${a}" min="0" max="10" step="0.5" aria-label="${a} weight">
    </div>`).join("");
  for (const a of ATTRIBUTES) {
    const slider = $(`#r-${a}`);
    slider.addEventListener("input", () => {
      $(`#o-${a}`).textContent = slider.value;
      change((s) => { leaveLikeMode(s); s.ratings[a] = Number(slider.value); }, { commit: false });
    });
    slider.addEventListener("change", commitURL);
    $(`#use-${a}`).addEventListener("change", (event) => change((s) => {
      leaveLikeMode(s);
      if (event.target.checked) s.ratings[a] = Number(slider.value);
      else delete s.ratings[a];
    }));
  }
  for (const name of [...ATTRIBUTES, "role"]) {
    const input = $(`#w-${name}`);
    input.addEventListener("input", () => {
      if (input.value === "" || !input.checkValidity()) return;
      change((s) => {
        if (Number(input.value) === 1) delete s.weights[name];
        else s.weights[name] = Number(input.value);
      }, { commit: false });
    });
    input.addEventListener("change", commitURL);
  }
  $("#position").addEventListener("change", (e) => change((s) => { leaveLikeMode(s); s.position = e.target.value; }));
  for (const name of NUMBERS) {
    const input = $(`#${name}`);
    const scale = name === "max_value" ? 1e6 : 1;
    input.addEventListener("input", () => {
      if (!input.checkValidity()) return;
      change((s) => (s[name] = input.value === "" ? null : Math.round(Number(input.value) * scale)), { commit: false });
    });
    input.addEventListener("change", commitURL);
  }
  for (const name of ["foot", "role_from"]) $(`#${name}`).addEventListener("change", (e) => change((s) => (s[name] = e.target.value)));
  $("#top").addEventListener("change", (e) => change((s) => (s.top = Number(e.target.value))));
  for (const field of document.querySelectorAll(".chips-field")) {
    const list = field.dataset.list;
    const input = field.querySelector("input");
    const add = () => {
      const value = input.value.trim();
      input.value = "";
      if (value && !state[list].includes(value)) change((s) => s[list].push(value));
    };
    input.addEventListener("keydown", (e) => e.key === "Enter" && (e.preventDefault(), add()));
    input.addEventListener("change", add);
    field.querySelector(".chips").addEventListener("click", (e) => {
      const value = e.target.closest("button")?.dataset.value;
      if (value !== undefined) change((s) => (s[list] = s[list].filter((v) => v !== value)));
    });
  }
  $("#plays").addEventListener("click", (e) => {
    const code = e.target.closest("button")?.dataset.code;
    if (code) change((s) => (s.plays = s.plays.includes(code) ? s.plays.filter((c) => c !== code) : [...s.plays, code]));
  });
  $("#like-clear").addEventListener("click", () => change(leaveLikeMode));
  $("#like-this").addEventListener("click", (e) => {
    likedName = e.target.dataset.name;
    change((s) => Object.assign(s, { like: Number(e.target.dataset.id), sel: null }));
  });
  const rows = $("#results tbody");
  rows.addEventListener("click", (e) => { const row = e.target.closest("tr"); if (row) select(Number(row.dataset.id)); });
  rows.addEventListener("keydown", (e) => {
    const row = e.target.closest("tr");
    if (!row) return;
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(Number(row.dataset.id)); }
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      (e.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling)?.focus();
    }
  });
  $("#download").addEventListener("click", downloadCSV);
  $("#copy-cli").addEventListener("click", () => navigator.clipboard?.writeText($("#cli").textContent));
  $("#query").addEventListener("submit", (e) => e.preventDefault());
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && !e.target.matches("input, select, textarea")) { e.preventDefault(); $("#search").focus(); }
  });
  setUpSearch();
}

function syncControls() {
  const profile = state.like && lastProfile ? lastProfile : { role: state.position, ...state.ratings };
  $("#position").value = ["attacker", "midfielder", "defender"].includes(profile.role) ? profile.role : state.position;
  for (const a of ATTRIBUTES) {
    const used = a in profile;
    const value = used ? profile[a] : $(`#r-${a}`).value || DEFAULT_RATINGS[a];
    $(`#use-${a}`).checked = used;
    $(`#r-${a}`).value = value;
    $(`#o-${a}`).textContent = used ? value : "–";
    $(`#r-${a}`).closest(".rating-row").classList.toggle("off", !used);
  }
  for (const name of [...ATTRIBUTES, "role"]) {
    const input = $(`#w-${name}`);
    if (document.activeElement !== input) input.value = state.weights[name] ?? 1;
  }
  for (const name of NUMBERS) {
    const input = $(`#${name}`);
    const scale = name === "max_value" ? 1e6 : 1;
    if (document.activeElement !== input) input.value = state[name] === null ? "" : state[name] / scale;
  }
  $("#foot").value = state.foot;
  $("#top").value = String(state.top);
  $("#role_from").value = effectiveRule();
  for (const field of document.querySelectorAll(".chips-field")) {
    field.querySelector(".chips").innerHTML = state[field.dataset.list].map((v) =>
      `<li><span>${escape(v)}</span><button type="button" data-value="${escape(v)}" aria-label="remove ${escape(v)}">✕</button></li>`).join("");
  }
  for (const button of document.querySelectorAll("#plays button")) {
    button.setAttribute("aria-pressed", state.plays.includes(button.dataset.code));
  }
  $("#like").hidden = !state.like;
  $("#like-name").textContent = likedName || `#${state.like}`;
  $("#profile").classList.toggle("from-player", Boolean(state.like));
  $("#from-player").hidden = !state.like;
}

// ---- search with suggestions (a combobox: arrows move, Enter picks, Escape closes) ----
function setUpSearch() {
  const input = $("#search");
  const list = $("#suggestions");
  let active = -1;
  let asked = 0;
  const options = () => [...list.querySelectorAll("[role=option]")];
  const close = () => { list.hidden = true; input.setAttribute("aria-expanded", "false"); active = -1; };
  const highlight = (index) => {
    const all = options();
    active = (index + all.length) % all.length;
    all.forEach((o, i) => o.setAttribute("aria-selected", i === active));
    input.setAttribute("aria-activedescendant", all[active]?.id || "");
    all[active]?.scrollIntoView({ block: "nearest" });
  };
  const pick = (option) => {
    if (!option || option.getAttribute("aria-disabled") === "true") return;
    likedName = option.dataset.name;
    input.value = "";
    close();
    change((s) => Object.assign(s, { like: Number(option.dataset.id), sel: null }));
  };
  input.addEventListener("input", async () => {
    const text = input.value.trim();
    const mine = ++asked;
    if (!text) return close();
    const found = await api(`players/search?${new URLSearchParams({ q: text, limit: 8 })}`).catch(() => null);
    if (mine !== asked || !found) return;
    list.innerHTML = found.players.map((p, i) => `
      <li role="option" id="suggestion-${i}" data-id="${p.sofifa_id}" data-name="${escape(p.short_name)}"
          aria-disabled="${!p.indexed}" aria-selected="false">
        <span class="player">${escape(p.short_name)}</span> <span class="ovr">${p.overall}</span>
        <span class="muted">${escape(p.player_positions)} · ${escape(p.club_name || "no club")} · ${p.age}${p.indexed ? "" : " · not compared"}</span>
      </li>`).join("") || `<li class="muted none">no player's name contains “${escape(text)}”</li>`;
    if (found.total > found.players.length) list.insertAdjacentHTML("beforeend", `<li class="muted none">${found.total - found.players.length} more: type more of the name</li>`);
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    active = -1;
    document.dispatchEvent(new CustomEvent("suggestions", { detail: { text } }));
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") { e.preventDefault(); highlight(active + (e.key === "ArrowDown" ? 1 : -1)); }
    else if (e.key === "Enter") { e.preventDefault(); pick(options()[Math.max(active, 0)]); }
    else if (e.key === "Escape") close();
  });
  list.addEventListener("mousedown", (e) => { e.preventDefault(); pick(e.target.closest("[role=option]")); });
  input.addEventListener("blur", () => setTimeout(close, 100));
}

// ---- CSV: the server writes it exactly as `ishan players ... --csv --explain` ----
async function downloadCSV() {
  const response = await fetch("players/similar.csv", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(requestBody(state)),
  });
  if (!response.ok) return showMessage("cannot download: fix the query first", "error");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = "ishan-players.csv";
  link.click();
  URL.revokeObjectURL(link.href);
}

function showMessage(text, kind = "") {
  const box = $("#message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

async function loadVocabulary() {
  vocabulary = await api("players/vocabulary");
  $("#dataset").textContent = `${vocabulary.players.toLocaleString("en")} outfield players · ${vocabulary.data}`;
  for (const [id, values] of [["leagues", vocabulary.leagues], ["clubs", vocabulary.clubs], ["nationalities", vocabulary.nationalities]]) {
    $(`#${id}`).innerHTML = values.map((v) => `<option value="${escape(v)}"></option>`).join("");
  }
  $("#plays").innerHTML = Object.entries(vocabulary.positions).map(([role, codes]) =>
    `<span class="code-group" title="${role}s">${codes.map((c) => `<button type="button" data-code="${c}" aria-pressed="false">${c}</button>`).join("")}</span>`).join("");
  syncControls();
}

async function nameOfLiked() {
  if (!state.like || likedName) return;
  const player = await api(`players/${state.like}`).catch(() => null);
  if (player) { likedName = player.short_name; syncControls(); $("#results-title").textContent = `Most like ${likedName}`; }
}

window.addEventListener("popstate", () => {
  clearTimeout(urlTimer);
  urlTimer = 0;
  state = fromURL(location.search);
  likedName = "";
  pushNext = true;
  nameOfLiked();
  refresh();
});

buildControls();
syncControls();
loadVocabulary().then(() => $("#cli").textContent = commandLine(state));
nameOfLiked();
refresh();
