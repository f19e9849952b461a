// The chat page: streams answers from POST /v1/chat/completions (server-sent events read with fetch), keeps the
// conversation id the server returns (so the stored conversation grows), and sends feedback on each answer.
"use strict";

const $ = id => document.getElementById(id);
const state = { conversationId: null, turns: [], busy: false, controller: null };  // turns: {role, content, node, id}

async function loadModels() {
  try {
    const names = await llmlab.models();
    $("model").replaceChildren(...names.map(n => llmlab.el("option", { value: n, text: n })));
    const saved = localStorage.getItem("llmlab.model");
    if (names.includes(saved)) $("model").value = saved;
  } catch (e) { llmlab.status($("status"), "could not list models: " + e.message, true); }
}

function history() {
  const system = $("system").value.trim();
  const messages = system ? [{ role: "system", content: system }] : [];
  return messages.concat(state.turns.map(t => ({ role: t.role, content: t.content })));
}

function addTurn(role, content) {
  $("empty").hidden = true;
  const turn = { role, content, id: null, node: llmlab.el("div", { class: "msg " + role }) };
  turn.text = llmlab.el("div", { class: "text", text: content });
  turn.node.append(turn.text);
  $("messages").append(turn.node);
  state.turns.push(turn);
  return turn;
}

function feedbackBar(turn, model) {
  const meta = llmlab.el("div", { class: "meta" }, llmlab.el("span", { class: "who", text: model }));
  const send = async (kind, reason, button) => {
    try {
      await llmlab.call("POST", "/api/feedback", { message_id: turn.id, kind, reason });
      button.classList.add(kind === "flag" ? "flagged" : "on");
      llmlab.status($("status"), kind === "flag" ? "Flagged: it goes to the labeling queue." : "Thanks for the feedback.");
    } catch (e) { llmlab.status($("status"), e.message, true); }
  };
  const up = llmlab.el("button", { class: "small", title: "good answer", "data-action": "up", text: "▲ Good" });
  const down = llmlab.el("button", { class: "small", title: "bad answer", "data-action": "down", text: "▼ Bad" });
  const flag = llmlab.el("button", { class: "small", title: "flag a misbehaviour", "data-action": "flag", text: "⚑ Flag" });
  const regen = llmlab.el("button", { class: "small", title: "answer again", "data-action": "regenerate", text: "↻ Regenerate" });
  up.onclick = () => send("up", null, up);
  down.onclick = () => send("down", null, down);
  flag.onclick = () => {
    if (turn.node.querySelector(".flagform")) return;
    const reason = llmlab.el("input", { type: "text", placeholder: "What went wrong? (e.g. wrong fact, needless refusal)" });
    const submit = llmlab.el("button", { class: "small", "data-action": "submit-flag", text: "Submit flag" });
    const form = llmlab.el("div", { class: "flagform" }, reason, submit);
    const go = async () => {
      if (!reason.value.trim()) { reason.focus(); return; }
      await send("flag", reason.value.trim(), flag);
      form.replaceWith(llmlab.el("div", { class: "note", text: "flagged: " + reason.value.trim() }));
    };
    submit.onclick = go;
    reason.onkeydown = e => { if (e.key === "Enter") go(); };
    turn.node.append(form);
    reason.focus();
  };
  regen.onclick = () => regenerate(turn);
  meta.append(up, down, flag, regen);
  turn.node.append(meta);
}

// Stream one answer to the current history into a new assistant turn.
async function answer() {
  const model = $("model").value;
  const body = { model, messages: history(), stream: true, temperature: Number($("temperature").value),
                 max_tokens: Number($("max_tokens").value) };
  if (state.conversationId !== null) body.conversation_id = state.conversationId;
  if ($("effort").value !== "low") body.reasoning_effort = $("effort").value;  // the answer arrives whole
  const turn = addTurn("assistant", "");
  turn.node.classList.add("streaming");
  setBusy(true);
  state.controller = new AbortController();
  let finish = null;
  try {
    const response = await llmlab.fetch("/v1/chat/completions", { method: "POST", body: JSON.stringify(body),
                                                                    signal: state.controller.signal });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error((data.error && data.error.message) || response.status + " " + response.statusText);
    }
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {   // one server-sent event per blank-line-ended block
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.llmlab) { state.conversationId = chunk.llmlab.conversation_id; turn.id = chunk.llmlab.message_id; }
          const choice = chunk.choices && chunk.choices[0];
          if (choice && choice.delta && choice.delta.content) {
            turn.content += choice.delta.content;
            turn.text.textContent = turn.content;
            $("messages").scrollTop = $("messages").scrollHeight;
          }
          if (choice && choice.finish_reason) finish = choice.finish_reason;
        }
      }
    }
    llmlab.status($("status"), finish === "length" ? "The answer reached max tokens." : "");
  } catch (e) {
    llmlab.status($("status"), e.name === "AbortError" ? "Stopped." : e.message, e.name !== "AbortError");
  } finally {
    turn.node.classList.remove("streaming");
    if (turn.id !== null) feedbackBar(turn, model);
    setBusy(false);
  }
}

function regenerate(turn) {
  if (state.busy) return;
  const index = state.turns.indexOf(turn);
  for (const t of state.turns.splice(index)) t.node.remove();  // drop this answer (and anything after it)
  answer();
}

function send() {
  const text = $("input").value.trim();
  if (!text || state.busy) return;
  if (!$("model").value) { llmlab.status($("status"), "no model is being served", true); return; }
  $("input").value = "";
  addTurn("user", text);
  answer();
}

function setBusy(busy) {
  state.busy = busy;
  $("send").disabled = busy;
  $("stop").hidden = !busy;
}

$("send").onclick = send;
$("stop").onclick = () => state.controller && state.controller.abort();
$("input").onkeydown = e => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } };
$("model").onchange = () => localStorage.setItem("llmlab.model", $("model").value);
$("new").onclick = () => {
  if (state.busy) return;
  for (const t of state.turns) t.node.remove();
  state.turns = [];
  state.conversationId = null;
  $("empty").hidden = false;
  llmlab.status($("status"), "");
};
loadModels();
