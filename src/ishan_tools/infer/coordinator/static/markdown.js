// A small Markdown subset rendered straight into DOM nodes: model output only ever becomes
// text nodes (never HTML), so nothing it says can run or load anything. Handles what chat
// models write: paragraphs, fenced code (even while still open), headings, lists, `code`,
// **bold** and *italic*. Links stay plain text.

const FENCE = /^\s*```\s*([\w+-]*)\s*$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
const INLINE = /(`+)([^`]+?)\1|\*\*(?=\S)(.+?)\*\*|__(?=\S)(.+?)__|\*(?=[^\s*])([^*]+?)\*/g;

function element(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Append `text` to `parent`, with inline code, bold and italic as elements. */
export function inline(text, parent) {
  let at = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > at) parent.append(text.slice(at, match.index));
    const [, ticks, code, bold, bold2, italic] = match;
    if (ticks) parent.append(element("code", code));
    else if (italic !== undefined) parent.append(element("em", italic));
    else parent.append(element("strong", bold ?? bold2));
    at = match.index + match[0].length;
  }
  if (at < text.length) parent.append(text.slice(at));
}

/** A DocumentFragment rendering `text`. */
export function render(text) {
  const out = document.createDocumentFragment();
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let paragraph = null;
  let list = null;
  const endParagraph = () => {
    if (!paragraph) return;
    const p = element("p");
    paragraph.forEach((line, i) => {
      if (i) p.append(element("br"));
      inline(line, p);
    });
    out.append(p);
    paragraph = null;
  };
  const endBlocks = () => {
    endParagraph();
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(FENCE);
    if (fence) {
      endBlocks();
      const code = [];
      while (i + 1 < lines.length && !FENCE.test(lines[i + 1])) code.push(lines[++i]);
      i++; // the closing fence, when there is one yet
      const pre = element("pre");
      if (fence[1]) pre.dataset.lang = fence[1];
      pre.append(element("code", code.join("\n").replace(/\n+$/, "")));
      out.append(pre);
      continue;
    }
    if (!line.trim()) {
      endBlocks();
      continue;
    }
    const heading = line.match(HEADING);
    if (heading) {
      endBlocks();
      const h = element(`h${Math.min(6, heading[1].length + 2)}`);
      inline(heading[2], h);
      out.append(h);
      continue;
    }
    const item = line.match(ITEM);
    if (item) {
      endParagraph();
      const ordered = /\d/.test(item[1]);
      if (!list || list.ordered !== ordered) {
        list = { ordered, node: element(ordered ? "ol" : "ul") };
        if (ordered && parseInt(item[1], 10) !== 1) list.node.start = parseInt(item[1], 10);
        out.append(list.node);
      }
      const li = element("li");
      inline(item[2], li);
      list.node.append(li);
      continue;
    }
    if (list && /^\s/.test(line)) {
      inline(" " + line.trim(), list.node.lastElementChild);
      continue;
    }
    list = null;
    (paragraph ??= []).push(line);
  }
  endBlocks();
  return out;
}
