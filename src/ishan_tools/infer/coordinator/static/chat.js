// The chat page of `ishan infer`: conversations kept in local storage, answers streamed from
// the OpenAI-compatible /v1/chat/completions, a stop button that aborts the request (the
// coordinator then frees the session on its worker), and the service panel beside it.

import { render as markdown } from "./markdown.js";
import { bytes, watchService } from "./service.js";
import { ApiError, chunks, errorOf } from "./stream.js";

const STORE = "ishan-infer/conversations";
const SETTINGS = "ishan-infer/settings";
const KEY = "ishan-infer/api-key";
const NEW_TITLE = "New chat";

const $ = (id) => document.getElementById(id);
const els = {
  chats: $("chats"),
  chatList: $("chat-list"),
  newChat: $("new-chat"),
  toggleChats: $("toggle-chats"),
  toggleSide: $("toggle-side"),
  side: $("side"),
  messages: $("messages"),
  empty: $("empty"),
  composer: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  announce: $("announce"),
  notice: $("notice"),
  noticeText: $("notice-text"),
  noticeAction: $("notice-action"),
  system: $("system"),
  temperature: $("temperature"),
  maxTokens: $("max-tokens"),
  format: $("format"),
  schemaBox: $("schema-box"),
  schema: $("schema"),
  schemaError: $("schema-error"),
  keyForm: $("key-form"),
  apiKey: $("api-key"),
  forgetKey: $("forget-key"),
  keyStatus: $("key-status"),
  model: $("model"),
  modelRow: $("model-row"),
  modelHelp: $("model-help"),
  modelPicker: $("model-picker"),
};

let live = null; // the answer being streamed: {conversation, message, controller}
let model = "default"; // what requests send: the picker's choice, or the one model
let knownModels = ""; // the names /v1/models gave last, to notice a new one
const views = new WeakMap(); // message -> its <li> parts

// ---- storage ----
function readJSON(name, fallback) {
  try {
    return JSON.parse(localStorage.getItem(name)) ?? fallback;
  } catch {
    return fallback; // unreadable: start afresh rather than break the page
  }
}

function loadStore() {
  const data = readJSON(STORE, null);
  if (!data || !Array.isArray(data.conversations)) return { current: null, conversations: [] };
  for (const conversation of data.conversations) {
    for (const message of conversation.messages) {
      if (message.pending) {
        delete message.pending; // the page went away while it streamed
        message.interrupted = true;
      }
    }
  }
  return data;
}

const store = loadStore();
const settings = {
  temperature: 0.7,
  max_tokens: 256,
  format: "text",
  schema: els.schema.value,
  ...readJSON(SETTINGS, {}),
};

function save() {
  try {
    localStorage.setItem(STORE, JSON.stringify(store));
    localStorage.setItem(SETTINGS, JSON.stringify(settings));
  } catch (error) {
    notice(`Could not save the conversations in this browser: ${error.message}`);
  }
}

let saveTimer = 0;
function saveSoon() {
  if (!saveTimer) saveTimer = setTimeout(() => ((saveTimer = 0), save()), 500);
}

const newId = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 8);

function current() {
  let conversation = store.conversations.find((c) => c.id === store.current);
  if (!conversation) {
    conversation = store.conversations[0];
    if (!conversation) {
      conversation = { id: newId(), title: NEW_TITLE, created: Date.now(), system: "", messages: [] };
      store.conversations.unshift(conversation);
    }
    store.current = conversation.id;
  }
  return conversation;
}

// ---- small DOM helpers ----
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function notice(text, action, onAction, kind = "other") {
  els.notice.dataset.kind = kind;
  els.noticeText.textContent = text;
  els.noticeAction.hidden = !action;
  els.noticeAction.textContent = action || "";
  els.noticeAction.onclick = onAction || null;
  els.notice.hidden = false;
}

function clearNotice() {
  els.notice.hidden = true;
}

function announce(text) {
  els.announce.textContent = text;
}

// ---- the conversation list ----
function renderList() {
  const items = store.conversations.map((conversation) => {
    const li = el("li", "chat-item");
    const open = el("button", "chat-open");
    open.type = "button";
    open.append(
      el("span", "chat-title", conversation.title),
      el("span", "muted small", `${conversation.messages.length} messages`),
    );
    if (conversation.id === store.current) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => select(conversation.id));
    const remove = el("button", "ghost chat-delete", "✕");
    remove.type = "button";
    remove.setAttribute("aria-label", `Delete the chat “${conversation.title}”`);
    remove.title = "Delete this chat";
    remove.addEventListener("click", () => removeConversation(conversation.id));
    li.append(open, remove);
    return li;
  });
  els.chatList.replaceChildren(...items);
}

function select(id) {
  store.current = id;
  save();
  renderAll();
  closeDrawers();
  els.prompt.focus();
}

function newConversation() {
  const empty = store.conversations.find((c) => !c.messages.length);
  if (empty) return select(empty.id);
  const conversation = { id: newId(), title: NEW_TITLE, created: Date.now(), system: "", messages: [] };
  store.conversations.unshift(conversation);
  select(conversation.id);
}

function removeConversation(id) {
  if (live && live.conversation.id === id) stop();
  store.conversations = store.conversations.filter((c) => c.id !== id);
  if (store.current === id) store.current = null;
  current();
  save();
  renderAll();
  announce("Chat deleted");
  const first = els.chatList.querySelector(".chat-open");
  (first || els.newChat).focus();
}

// ---- messages ----
function stats(message) {
  const s = message.stats || {};
  const parts = [];
  if (message.pending) {
    const waited = (performance.now() - s.started) / 1000;
    if (!s.tokens) parts.push(`waiting for the first token · ${waited.toFixed(1)} s`);
    else parts.push(`streaming · ${s.tokens} tokens`);
  }
  if (s.ttft_ms != null) parts.push(`first token ${Math.round(s.ttft_ms)} ms`);
  if (s.tokens_per_s != null) parts.push(`${s.tokens_per_s.toFixed(1)} tok/s`);
  if (!message.pending && s.tokens) {
    parts.push(s.prompt_tokens ? `${s.tokens} tokens (prompt ${s.prompt_tokens})` : `${s.tokens} tokens`);
  }
  if (s.finish) parts.push(`finish: ${s.finish}`);
  if (message.stopped) parts.push("stopped");
  if (message.interrupted) parts.push("interrupted by a reload");
  if (s.worker) parts.push(s.kv_bytes ? `${s.worker} · KV ${bytes(s.kv_bytes)}` : s.worker);
  return parts;
}

function body(message, into) {
  if (message.role === "user") {
    into.append(el("p", "plain", message.content));
    return;
  }
  if (message.format && message.format !== "text" && message.content && !message.pending) {
    let pretty = null;
    try {
      pretty = JSON.stringify(JSON.parse(message.content), null, 2);
    } catch {
      // not JSON: show it as it came
    }
    const pre = el("pre", pretty ? "json" : "json invalid");
    pre.append(el("code", "", pretty ?? message.content));
    into.append(pre, el("p", "muted small", pretty ? "valid JSON" : "not valid JSON"));
    return;
  }
  into.append(markdown(message.content));
  if (message.pending) {
    // the cursor goes at the end of the text: inside the last paragraph, item or code
    let last = into.lastElementChild;
    while (last && ["UL", "OL", "PRE"].includes(last.tagName)) last = last.lastElementChild;
    (last || into).append(el("span", "cursor", "▍"));
  }
}

function paint(message) {
  const view = views.get(message);
  if (!view) return;
  view.body.replaceChildren();
  body(message, view.body);
  if (message.error) view.body.append(el("p", "error", message.error));
  view.stats.replaceChildren(...stats(message).map((part) => el("span", "chip", part)));
  view.li.setAttribute("aria-busy", message.pending ? "true" : "false");
}

let painting = new Set();
function paintSoon(message) {
  if (!painting.size) {
    requestAnimationFrame(() => {
      const stick = nearBottom();
      const todo = painting;
      painting = new Set();
      todo.forEach(paint);
      if (stick) scrollDown();
    });
  }
  painting.add(message);
}

function messageView(message) {
  const li = el("li", `message ${message.role}`);
  const who = el("p", "who", message.role === "user" ? "You" : "Assistant");
  const content = el("div", "content");
  const line = el("p", "stats");
  li.append(who, content, line);
  views.set(message, { li, body: content, stats: line });
  paint(message);
  return li;
}

function nearBottom() {
  const m = els.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function scrollDown() {
  els.messages.scrollTop = els.messages.scrollHeight;
}

function renderMessages() {
  const conversation = current();
  els.messages.replaceChildren(...conversation.messages.map(messageView));
  els.empty.hidden = conversation.messages.length > 0;
  els.system.value = conversation.system || "";
  scrollDown();
}

function renderAll() {
  renderList();
  renderMessages();
}

// ---- settings ----
function showSettings() {
  els.temperature.value = settings.temperature;
  els.maxTokens.value = settings.max_tokens;
  els.format.value = settings.format;
  els.schema.value = settings.schema;
  els.schemaBox.hidden = settings.format !== "json_schema";
}

function readSettings() {
  settings.temperature = els.temperature.value === "" ? 0.7 : Number(els.temperature.value);
  settings.max_tokens = els.maxTokens.value === "" ? 256 : Number(els.maxTokens.value);
  settings.format = els.format.value;
  settings.schema = els.schema.value;
  els.schemaBox.hidden = settings.format !== "json_schema";
  save();
}

/** OpenAI's `response_format` for the chosen output, or null; throws on a bad schema. */
function responseFormat() {
  els.schemaError.hidden = true;
  if (settings.format === "json_object") return { type: "json_object" };
  if (settings.format !== "json_schema") return null;
  let schema;
  try {
    schema = JSON.parse(settings.schema);
  } catch (error) {
    els.schemaError.textContent = `The JSON schema is not valid JSON: ${error.message}`;
    els.schemaError.hidden = false;
    throw new Error("fix the JSON schema first");
  }
  return { type: "json_schema", json_schema: { name: "answer", schema, strict: true } };
}

// ---- the API key ----
const apiKey = () => localStorage.getItem(KEY) || "";

function headers() {
  const key = apiKey();
  return { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) };
}

function needKey(message) {
  const text = apiKey()
    ? `The service refused the API key (${message}): enter the right one under Settings → API key.`
    : `This service needs an API key (${message}): enter it under Settings → API key.`;
  notice(text, "Enter the key", () => {
    openDrawer(els.side, els.toggleSide);
    els.apiKey.focus();
  }, "key");
  els.keyStatus.textContent = apiKey() ? "Refused by the service." : "The service needs a key.";
}

/** Ask /v1/models whether the key (or no key) is accepted, and learn the model name. */
async function checkKey() {
  try {
    const response = await fetch("v1/models", { headers: headers(), cache: "no-store" });
    if (response.status === 401) return needKey((await errorOf(response)).message);
    if (!response.ok) return;
    showModels((await response.json()).data);
    els.keyStatus.textContent = apiKey() ? "Key accepted. Kept in this browser only." : "Kept in this browser only.";
    if (els.notice.dataset.kind === "key") clearNotice();
  } catch {
    // the service panel reports an unreachable coordinator
  }
}

/** The model picker: shown when the service knows several models; the choice is kept. */
function showModels(models) {
  const names = models.map((m) => m.id);
  const labels = models.map((m) => `${m.id} (${m.workers} live worker${m.workers === 1 ? "" : "s"})`);
  const shown = [...els.modelPicker.options].map((o) => o.text);
  if (labels.join("\n") !== shown.join("\n")) {
    // replaced only when something changed, so an open list is not closed under the user
    els.modelPicker.replaceChildren(...labels.map((label, i) => new Option(label, names[i])));
  }
  const several = names.length > 1;
  els.modelRow.hidden = els.modelHelp.hidden = !several;
  els.modelPicker.disabled = !several;
  model = names.includes(settings.model) ? settings.model : names[0] || "default";
  els.modelPicker.value = model;
  knownModels = names.join("\n");
}

// ---- sending and stopping ----
function setBusy(busy) {
  els.send.disabled = busy;
  els.stop.disabled = !busy;
  els.composer.setAttribute("aria-busy", String(busy));
  if (!busy && document.activeElement === document.body) els.prompt.focus();
}

function request(conversation, format) {
  const history = conversation.messages
    .filter((m) => m.role === "user" || m.content)
    .map(({ role, content }) => ({ role, content }));
  const messages = conversation.system ? [{ role: "system", content: conversation.system }, ...history] : history;
  const payload = {
    model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    temperature: settings.temperature,
    max_tokens: settings.max_tokens,
  };
  if (format) payload.response_format = format;
  return payload;
}

async function send() {
  const text = els.prompt.value.trim();
  if (live || !text) return;
  readSettings();
  let format;
  try {
    format = responseFormat();
  } catch {
    openDrawer(els.side, els.toggleSide);
    els.schema.focus();
    return;
  }
  const conversation = current();
  conversation.messages.push({ role: "user", content: text });
  if (conversation.title === NEW_TITLE) conversation.title = text.length > 48 ? `${text.slice(0, 47)}…` : text;
  const payload = request(conversation, format);
  const message = { role: "assistant", content: "", pending: true, format: settings.format, stats: {} };
  conversation.messages.push(message);
  els.prompt.value = "";
  save();
  renderAll();
  await stream(conversation, message, payload);
}

async function stream(conversation, message, payload) {
  const controller = new AbortController();
  live = { conversation, message, controller };
  setBusy(true);
  const s = message.stats;
  s.started = performance.now();
  let first = null;
  let chunkCount = 0;
  const clock = setInterval(() => paintSoon(message), 100);
  try {
    const response = await fetch("v1/chat/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(payload),
      signal: controller.signal,
    });
    if (!response.ok) throw await errorOf(response);
    s.worker = response.headers.get("x-ishan-worker") || undefined;
    s.kv_bytes = Number(response.headers.get("x-ishan-kv-bytes")) || undefined;
    for await (const chunk of chunks(response)) {
      if (chunk.error) throw new ApiError(chunk.error.code || 500, chunk.error.message);
      const choice = chunk.choices && chunk.choices[0];
      const piece = choice && choice.delta && choice.delta.content;
      if (piece) {
        const now = performance.now();
        first ??= now;
        chunkCount++;
        s.tokens = chunkCount;
        s.ttft_ms = first - s.started;
        if (chunkCount > 1) s.tokens_per_s = ((chunkCount - 1) * 1000) / (now - first);
        message.content += piece;
        paintSoon(message);
        saveSoon();
      }
      if (choice && choice.finish_reason) s.finish = choice.finish_reason;
      if (chunk.usage) {
        s.tokens = chunk.usage.completion_tokens;
        s.prompt_tokens = chunk.usage.prompt_tokens;
      }
    }
    if (!s.finish) throw new Error("the stream ended before the answer was complete");
    clearNotice();
  } catch (error) {
    if (error.name === "AbortError") {
      message.stopped = true;
    } else {
      if (error instanceof ApiError) message.error = `Error ${error.status}: ${error.message}`;
      else if (error instanceof TypeError) message.error = `Error: cannot reach the coordinator (${error.message})`;
      else message.error = `Error: ${error.message}`;
      if (error.status === 401) needKey(error.message);
    }
  } finally {
    clearInterval(clock);
    delete message.pending;
    delete s.started;
    live = null;
    setBusy(false);
    save();
    paint(message);
    if (conversation.id === store.current) scrollDown();
    renderList();
    announce(message.error || (message.stopped ? "Stopped." : `Answer complete: ${s.tokens || 0} tokens.`));
    service.refresh();
  }
}

function stop() {
  if (live) live.controller.abort();
}

// ---- drawers (phone width) ----
function openDrawer(drawer, button) {
  drawer.dataset.open = "true";
  button.setAttribute("aria-expanded", "true");
}

function closeDrawers() {
  for (const [drawer, button] of [
    [els.chats, els.toggleChats],
    [els.side, els.toggleSide],
  ]) {
    if (drawer.dataset.open !== "true") continue;
    const hadFocus = drawer.contains(document.activeElement);
    delete drawer.dataset.open;
    button.setAttribute("aria-expanded", "false");
    if (hadFocus && getComputedStyle(button).display !== "none") button.focus();
  }
}

function toggle(drawer, button) {
  const open = drawer.dataset.open === "true";
  closeDrawers();
  if (!open) {
    openDrawer(drawer, button);
    drawer.querySelector("button, input, textarea, select").focus();
  }
}

// ---- wiring ----
els.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
els.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (live) {
    event.preventDefault();
    stop();
  } else {
    closeDrawers();
  }
});
els.stop.addEventListener("click", () => {
  stop();
  els.prompt.focus();
});
els.newChat.addEventListener("click", newConversation);
els.toggleChats.addEventListener("click", () => toggle(els.chats, els.toggleChats));
els.toggleSide.addEventListener("click", () => toggle(els.side, els.toggleSide));
for (const input of [els.temperature, els.maxTokens, els.format, els.schema]) {
  input.addEventListener("change", readSettings);
}
els.system.addEventListener("input", () => {
  current().system = els.system.value;
  saveSoon();
});
els.modelPicker.addEventListener("change", () => {
  model = settings.model = els.modelPicker.value;
  save();
});
els.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = els.apiKey.value.trim();
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
  els.apiKey.value = "";
  els.apiKey.placeholder = key ? "saved (hidden)" : "none";
  els.keyStatus.textContent = "Checking…";
  checkKey();
});
els.forgetKey.addEventListener("click", () => {
  localStorage.removeItem(KEY);
  els.apiKey.placeholder = "none";
  els.keyStatus.textContent = "Forgotten.";
  checkKey();
});
window.addEventListener("storage", (event) => {
  if (event.key !== STORE || live) return; // another tab changed the chats: show them
  Object.assign(store, loadStore());
  renderAll();
});

const service = watchService(
  {
    workers: $("workers"),
    totals: $("totals"),
    status: $("service-status"),
    updated: $("workers-updated"),
  },
  (workers) => {
    const names = [...new Set(workers.map((w) => w.model))];
    els.model.textContent = names.length ? `model: ${names.join(", ")}` : "model: none yet";
    const fresh = names.some((name) => !knownModels.split("\n").includes(name));
    if (fresh || knownModels.includes("\n")) checkKey(); // new names, or live counts to refresh
  },
);

if (apiKey()) els.apiKey.placeholder = "saved (hidden)";
showSettings();
current();
renderAll();
checkKey();
els.prompt.focus();
