// Shared by the chat and labeling pages: JSON calls to the server (with the optional API key) and small helpers.
"use strict";

const llmlab = {
  apiKey() { return localStorage.getItem("llmlab.apiKey") || ""; },

  headers() {
    const h = { "Content-Type": "application/json" };
    if (llmlab.apiKey()) h["Authorization"] = "Bearer " + llmlab.apiKey();
    return h;
  },

  // fetch with the API key; a server that wants one answers 401: ask for it once, keep it in this browser, retry
  async fetch(url, init) {
    let response = await fetch(url, { ...init, headers: llmlab.headers() });
    if (response.status === 401) {
      const key = window.prompt("This server needs an API key:");
      if (key && key.trim()) {
        localStorage.setItem("llmlab.apiKey", key.trim());
        response = await fetch(url, { ...init, headers: llmlab.headers() });
      }
    }
    return response;
  },

  // fetch JSON; throws an Error with the server's message on a non-2xx answer
  async call(method, url, body) {
    const response = await llmlab.fetch(url, { method, body: body && JSON.stringify(body) });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || response.status + " " + response.statusText);
    return data;
  },

  async models() { return (await llmlab.call("GET", "/v1/models")).data.map(m => m.id); },

  el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child);
    return node;
  },

  status(node, text, isError = false) {
    node.textContent = text;
    node.classList.toggle("error", isError);
  },
};
