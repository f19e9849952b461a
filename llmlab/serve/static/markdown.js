// A small Markdown renderer for the labeling guide: headings, paragraphs, lists, tables, block quotes, **bold**,
// *italics*, `code` and [links](url). Text is HTML-escaped before any markup is added.
"use strict";

function renderMarkdown(source) {
  const escape = s => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const inline = s => escape(s)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/\*([^*]+)\*/g, "<em>$1</em>")
    .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, '<a href="$2">$1</a>');
  const out = [], lines = source.split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    const heading = line.match(/^(#{1,6})\s+(.*)/);
    if (heading) { out.push(`<h${heading[1].length}>${inline(heading[2])}</h${heading[1].length}>`); i++; continue; }
    const block = (test, strip) => { const got = []; while (i < lines.length && test(lines[i])) got.push(strip(lines[i++])); return got; };
    if (line.startsWith(">")) {
      out.push("<blockquote>" + inline(block(l => l.startsWith(">"), l => l.replace(/^>\s?/, "")).join(" ")) + "</blockquote>");
    } else if (line.startsWith("|")) {
      const rows = block(l => l.startsWith("|"), l => l.trim().replace(/^\||\|$/g, "").split("|").map(c => c.trim()));
      const body = rows.filter(r => !r.every(c => /^:?-+:?$/.test(c)));
      out.push("<table>" + body.map((r, k) => "<tr>" + r.map(c => k ? `<td>${inline(c)}</td>` : `<th>${inline(c)}</th>`).join("") + "</tr>").join("") + "</table>");
    } else if (/^\s*([-*]|\d+\.)\s/.test(line)) {
      const ordered = /^\s*\d+\./.test(line);
      const items = [];
      while (i < lines.length && lines[i].trim() && !lines[i].startsWith("#")) {
        if (/^\s*([-*]|\d+\.)\s/.test(lines[i])) items.push(lines[i].replace(/^\s*([-*]|\d+\.)\s+/, ""));
        else items[items.length - 1] += " " + lines[i].trim();   // a wrapped list item
        i++;
      }
      const tag = ordered ? "ol" : "ul";
      out.push(`<${tag}>` + items.map(t => `<li>${inline(t)}</li>`).join("") + `</${tag}>`);
    } else {
      const para = [lines[i++]];   // the first line always (so an odd line can never stall the loop), then its run
      para.push(...block(l => l.trim() && !/^(#|>|\||\s*([-*]|\d+\.)\s)/.test(l), l => l));
      out.push("<p>" + inline(para.join(" ")) + "</p>");
    }
  }
  return out.join("\n");
}
