// The labeling page: the review queue, ideal responses, blind A/B comparisons of two served versions, the arena
// leaderboard and the labeling guide.
"use strict";

const $ = id => document.getElementById(id);
const state = { items: [], current: null, pair: null };  // pair: {a: message id, b: message id}

const labeler = () => $("labeler").value.trim() || null;

async function loadQueue(keep = null) {
  try {
    state.items = (await llmlab.call("GET", "/api/queue?limit=50")).items;
  } catch (e) { llmlab.status($("status"), e.message, true); return; }
  $("queue").replaceChildren(...state.items.map(item => {
    const user = [...item.prompt].reverse().find(m => m.role === "user");
    const tags = item.flagged ? [llmlab.el("span", { class: "tag flag", text: "flagged" })]
                              : [llmlab.el("span", { class: "tag sample", text: "sample" })];
    const node = llmlab.el("div", { class: "item", "data-message": item.message_id },
      llmlab.el("div", { class: "q", text: user ? user.content : "(no user message)" }),
      llmlab.el("div", { class: "a" }, ...tags, item.answer || "(empty answer)"));
    node.onclick = () => select(item);
    return node;
  }));
  if (!state.items.length) $("queue").append(llmlab.el("div", { class: "item", text: "Nothing waiting. Flag answers in the chat." }));
  const again = state.items.find(i => i.message_id === keep);
  if (again) select(again);
}

function select(item) {
  state.current = item;
  state.pair = null;
  for (const node of document.querySelectorAll(".item")) node.classList.toggle("selected", node.dataset.message == item.message_id);
  $("nothing").hidden = true;
  $("item").hidden = false;
  $("prompt").replaceChildren(...item.prompt.map(m =>
    llmlab.el("div", { class: "turn" }, llmlab.el("b", { text: m.role }), m.content)));
  $("answer").textContent = item.answer || "(empty answer)";
  $("answer-model").textContent = item.model;
  $("flags").replaceChildren(...item.feedback.filter(f => f.kind === "flag").map(f =>
    llmlab.el("span", { class: "tag flag", text: "flag: " + f.reason })));
  $("ideal").value = "";
  $("pair").hidden = $("verdict").hidden = true;
  llmlab.status($("status"), "");
}

function showTab(name) {
  $("tab-ideal").classList.toggle("on", name === "ideal");
  $("tab-compare").classList.toggle("on", name === "compare");
  $("pane-ideal").hidden = name !== "ideal";
  $("pane-compare").hidden = name !== "compare";
}

async function submitIdeal() {
  const item = state.current, ideal = $("ideal").value.trim();
  if (!item || !ideal) { llmlab.status($("status"), "write the ideal response first", true); return; }
  try {
    await llmlab.call("POST", "/api/labels", { message_id: item.message_id, ideal, labeler: labeler() });
    await loadQueue();
    llmlab.status($("status"), "Saved: it will train the next version (llmlab flywheel). Pick the next answer.");
  } catch (e) { llmlab.status($("status"), e.message, true); }
}

// Two answers to the selected prompt from two served versions (random order; the same version twice if only one
// is served), made through the chat API so the server stores them as siblings of the reviewed answer.
async function generatePair() {
  const item = state.current;
  if (!item) return;
  $("generate").disabled = true;
  llmlab.status($("status"), "generating…");
  try {
    const models = await llmlab.models();
    const shuffled = models.sort(() => Math.random() - 0.5);
    const picks = [shuffled[0], shuffled[1 % shuffled.length]];
    const answers = await Promise.all(picks.map(model => llmlab.call("POST", "/v1/chat/completions", {
      model, messages: item.prompt, conversation_id: item.conversation_id, temperature: 0.7, max_tokens: 128,
      seed: Math.floor(Math.random() * 1e9) })));
    state.pair = { a: answers[0].llmlab.message_id, b: answers[1].llmlab.message_id };
    $("cand-a").textContent = answers[0].choices[0].message.content || "(empty)";
    $("cand-b").textContent = answers[1].choices[0].message.content || "(empty)";
    $("pair").hidden = $("verdict").hidden = false;
    llmlab.status($("status"), "Which answer is better? (guide, section 4)");
  } catch (e) { llmlab.status($("status"), e.message, true); }
  $("generate").disabled = false;
}

async function judge(winner) {
  if (!state.pair) return;
  try {
    const result = await llmlab.call("POST", "/api/comparisons", { message_a: state.pair.a, message_b: state.pair.b,
                                                                   winner, labeler: labeler() });
    state.pair = null;
    $("verdict").hidden = true;
    await Promise.all([loadQueue(), loadBoard()]);
    llmlab.status($("status"), `Saved: A was ${result.models.a}, B was ${result.models.b}.`);
  } catch (e) { llmlab.status($("status"), e.message, true); }
}

async function loadBoard() {
  try {
    const board = await llmlab.call("GET", "/api/leaderboard");
    $("board").replaceChildren(...board.rows.map(r => llmlab.el("tr", {},
      llmlab.el("td", { text: r.model + (board.served.includes(r.model) ? "" : " (not served)") }),
      llmlab.el("td", { class: "num", text: r.rating === null ? "–" : r.rating.toFixed(0) }),
      llmlab.el("td", { class: "num", text: r.ci95 ? `${r.ci95[0].toFixed(0)}–${r.ci95[1].toFixed(0)}` : "–" }),
      llmlab.el("td", { class: "num", text: r.elo === null ? "–" : r.elo.toFixed(0) }),
      llmlab.el("td", { class: "num", text: `${r.wins}-${r.losses}-${r.ties}` }))));
    $("board-note").textContent = `${board.comparisons} blind comparison${board.comparisons === 1 ? "" : "s"}; ` +
                                  "Bradley-Terry ratings on the Elo scale, online Elo beside";
  } catch (e) { $("board-note").textContent = e.message; }
}

async function loadGuide() {
  try { $("guide").innerHTML = renderMarkdown((await llmlab.call("GET", "/api/instructions")).markdown); }
  catch (e) { $("guide").textContent = e.message; }
}

$("labeler").value = localStorage.getItem("llmlab.labeler") || "";
$("labeler").onchange = () => localStorage.setItem("llmlab.labeler", $("labeler").value.trim());
$("refresh").onclick = () => loadQueue(state.current && state.current.message_id);
$("tab-ideal").onclick = () => showTab("ideal");
$("tab-compare").onclick = () => showTab("compare");
$("submit-ideal").onclick = submitIdeal;
$("copy-answer").onclick = () => { $("ideal").value = state.current ? state.current.answer : ""; $("ideal").focus(); };
$("generate").onclick = generatePair;
for (const button of document.querySelectorAll("[data-winner]")) button.onclick = () => judge(button.dataset.winner);
loadQueue();
loadBoard();
loadGuide();
