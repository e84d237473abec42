// The live run page. The server rendered the state it had; this connects to the run's
// websocket, which sends a snapshot and then every event in seq order, and keeps the page in
// step. Rules that keep it correct:
// - an event is applied only if its seq is exactly the last one + 1; a gap (or a drop) means
//   reconnecting with ?after=<last>, and the server answers with a fresh snapshot;
// - a snapshot replaces what the page holds: texts rebuilt from snapshot + deltas equal the
//   stored ones byte for byte. A light snapshot (the server's answer when ?after= is exactly
//   the seq it covers) carries statuses and each text's length but no text: the page keeps its
//   own texts if every length matches, and asks for a full snapshot if one does not;
// - model output is only ever set as text (textContent / text nodes). The one HTML put into
//   the page is what the server rendered and sanitised (lib/markdown): a finished answer's
//   Markdown and the panels (status, verdict, calls), fetched from this run's own URLs.

const live = JSON.parse(document.getElementById("run-live").textContent);
const root = document.getElementById("run");
const candidatesBox = document.getElementById("candidates");
const judgeBox = document.getElementById("judge-passes");
const conn = document.getElementById("run-conn");

const TERMINAL = new Set(["finished", "finished_without_verdict", "failed", "cancelled"]);
const ENDED_PART = new Set(["done", "failed", "cancelled", "skipped"]);
const BADGE = {
  queued: "badge-queued", streaming: "badge-running", running: "badge-running",
  retrying: "badge-warning", done: "badge-finished", failed: "badge-failed",
  cancelled: "badge-cancelled", skipped: "badge",
};

let lastSeq = live.seq;
let panelsSeq = live.seq; // the seq the server-rendered panels are known to cover
let runStatus = root.querySelector("[data-run-status]")?.dataset.runStatus || "queued";
let socket = null;
let backoff = 500;
let reconnectTimer = null;
let finished = false;
let panelsTimer = null;
let panelsInFlight = false;
let panelsAgain = false;
let awaitingFull = false; // a light snapshot did not match: a full one is on its way

// --- formatting (as templatetags/runs_format.py) -------------------------------------------

function usd(value) {
  if (value === null || value === undefined || value === "") return "unpriced";
  const amount = Number(value);
  if (!Number.isFinite(amount)) return "unpriced";
  if (amount === 0) return "$0.00";
  const abs = Math.abs(amount);
  const places = abs >= 1 ? 2 : abs >= 0.01 ? 4 : 6;
  let text = amount.toFixed(places);
  if (places > 2) {
    text = text.replace(/0+$/, "");
    const [whole, frac = ""] = text.split(".");
    text = `${whole}.${frac.padEnd(2, "0")}`;
  }
  return `$${text}`;
}

function duration(ms) {
  if (ms === null || ms === undefined || ms === "") return "—";
  const n = Number(ms);
  if (!Number.isFinite(n)) return "—";
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(1)} s`;
  return `${Math.round(Math.floor(n / 60000))} min ${Math.round((n % 60000) / 1000)} s`;
}

function tokens(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

// --- candidate columns ---------------------------------------------------------------------

const columns = new Map(); // part -> {el, stream, node, text, rendered, status}

function field(el, name) {
  return el.querySelector(`[data-field="${name}"]`);
}

function setBadge(badge, status) {
  if (!badge) return;
  badge.className = `badge ${BADGE[status] || "badge"}`;
  badge.textContent = status;
}

function adopt(el) {
  // A server-rendered column: its text is what the server had, already rendered if done.
  const stream = el.querySelector("[data-stream]");
  const text = stream.textContent;
  stream.textContent = "";
  const node = document.createTextNode(text);
  stream.appendChild(node);
  const col = { el, stream, node, text, status: el.dataset.status, rendered: null };
  if (el.dataset.view === "md") col.rendered = text;
  columns.set(el.dataset.part, col);
  return col;
}

function roundBox(round) {
  let box = candidatesBox.querySelector(`.round[data-round="${round}"]`);
  if (box) return box;
  candidatesBox.querySelector("[data-empty]")?.remove();
  box = document.getElementById("tpl-round").content.firstElementChild.cloneNode(true);
  box.dataset.round = String(round);
  const title = box.querySelector("[data-round-title]");
  if (live.mode === "debate") {
    title.textContent = round === 0 ? "First answers" : `Round ${round} · revised after the debate`;
  } else {
    title.remove();
  }
  const later = [...candidatesBox.querySelectorAll(".round")].find(
    (other) => Number(other.dataset.round) > round,
  );
  candidatesBox.insertBefore(box, later || null);
  return box;
}

function memberPosition(member) {
  // Blind mode gives each person an order of their own (live.order: member -> position).
  if (live.order && member in live.order) return live.order[member];
  const match = /^m(\d+)$/.exec(member || "");
  return match ? Number(match[1]) - 1 : 999;
}

function providerInfo(name) {
  return live.providers[name] || { label: name || "", kind: "" };
}

function column(part, data) {
  const known = columns.get(part);
  if (known) return known;
  const existing = root.querySelector(`.cand[data-part="${CSS.escape(part)}"]`);
  if (existing) return adopt(existing);
  const [member, roundText] = part.split("/");
  const round = Number(data?.round ?? roundText ?? 0);
  const el = document.getElementById("tpl-column").content.firstElementChild.cloneNode(true);
  const position = memberPosition(member);
  Object.assign(el.dataset, { part, member, round: String(round), position: String(position) });
  field(el, "index").textContent = String(position + 1);
  const grid = roundBox(round).querySelector(".columns");
  const after = [...grid.children].find((other) => Number(other.dataset.position) > position);
  grid.insertBefore(el, after || null);
  grid.style.setProperty("--n", String(grid.children.length));
  return adopt(el);
}

function setText(col, text) {
  if (col.text === text) return;
  col.text = text;
  col.node.data = text;
}

function append(col, text) {
  const body = col.el.querySelector("[data-body]");
  const atBottom = body.scrollHeight - body.scrollTop - body.clientHeight < 24;
  col.text += text;
  col.node.appendData(text);
  if (atBottom) body.scrollTop = body.scrollHeight;
}

function setStatus(col, status) {
  col.status = status;
  col.el.dataset.status = status;
  setBadge(field(col.el, "status"), status);
  const toggle = col.el.querySelector("[data-action=toggle-view]");
  toggle.hidden = status !== "done";
  const placeholder = col.el.querySelector("[data-placeholder]");
  placeholder.textContent = status === "queued" && !col.text ? "Waiting for the first token…" : "";
  if (status !== "done") showView(col, "raw");
}

function showView(col, view) {
  col.el.dataset.view = view;
  const toggle = col.el.querySelector("[data-action=toggle-view]");
  toggle.textContent = view === "md" ? "Raw" : "Rendered";
}

function setMeta(col, data) {
  // Blind mode (live.blind): the server gave each member an alias; no model name or
  // credential label from the events is shown until the person has judged.
  if (data.model) {
    const model = field(col.el, "model");
    const alias = live.labels[col.el.dataset.member];
    model.textContent = alias || (live.blind ? "Answer" : data.model);
    model.title = live.blind ? model.textContent : data.model;
  }
  if (data.provider && !live.blind) {
    const info = providerInfo(data.provider);
    field(col.el, "provider").textContent = info.label;
    field(col.el, "simulated").hidden = info.kind !== "simulated";
  }
  if ("error" in data) {
    const error = field(col.el, "error");
    error.textContent = data.error || "";
    error.hidden = !data.error;
  }
  if (data.usage && col.status === "done") {
    const approx = data.usage.estimated ? "~" : "";
    field(col.el, "tokens").textContent =
      `${approx}${tokens(data.usage.input_tokens)} / ${tokens(data.usage.output_tokens)}`;
  }
  if ("ttft_ms" in data) field(col.el, "ttft").textContent = duration(data.ttft_ms);
  if ("latency_ms" in data) field(col.el, "latency").textContent = duration(data.latency_ms);
  if ("cost" in data && col.status === "done") field(col.el, "cost").textContent = usd(data.cost);
}

async function render(part, col) {
  // The finished answer's Markdown, rendered and sanitised by the server.
  const text = col.text;
  if (col.rendered === text || col.rendering === text) return;
  col.rendering = text;
  try {
    const url = `${live.partUrl}?key=${encodeURIComponent(part)}`;
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    const html = await response.text();
    if (col.text !== text || col.status !== "done") return; // it changed meanwhile
    col.el.querySelector("[data-md]").innerHTML = html;
    col.rendered = text;
    if (!col.el.dataset.userView) showView(col, "md");
  } finally {
    col.rendering = null;
  }
}

function syncCandidate(part, data, light) {
  const col = column(part, data);
  if (!light) setText(col, data.text || "");
  setStatus(col, data.status || "queued");
  setMeta(col, { ...data, error: data.error || "" });
  if (col.status === "done") render(part, col);
}

// --- judge passes --------------------------------------------------------------------------

const passes = new Map();

function judgePass(part, data) {
  let pass = passes.get(part);
  if (pass) return pass;
  let el = judgeBox.querySelector(`.judge-pass[data-part="${CSS.escape(part)}"]`);
  if (!el) {
    el = document.getElementById("tpl-judge-pass").content.firstElementChild.cloneNode(true);
    el.dataset.part = part;
    judgeBox.appendChild(el);
  }
  judgeBox.hidden = false;
  const stream = el.querySelector("[data-stream]");
  const text = stream.textContent;
  stream.textContent = "";
  const node = document.createTextNode(text);
  stream.appendChild(node);
  pass = { el, node, text };
  passes.set(part, pass);
  const [judge, phase] = part.split("/");
  field(el, "phase").textContent = phase ? phase[0].toUpperCase() + phase.slice(1) : "";
  field(el, "judge").textContent = judge === "judge" ? "" : judge;
  if (data) setPassMeta(pass, data);
  return pass;
}

function setPassMeta(pass, data) {
  if (data.status) {
    pass.el.dataset.status = data.status;
    setBadge(field(pass.el, "status"), data.status);
    if (data.status === "streaming") pass.el.open = true;
  }
  if (data.labels) {
    field(pass.el, "labels").textContent = Object.entries(data.labels)
      .map(([label, member]) => `${label} = ${live.labels[member] || member}`)
      .join(" · ");
  }
}

function endPasses(status) {
  for (const pass of passes.values()) {
    if (pass.el.dataset.status === "streaming") setPassMeta(pass, { status });
  }
}

// --- the verdict on the columns ------------------------------------------------------------

function markWinner(verdict) {
  // The judge saw each member's last answer: only that column can win or carry a score.
  const winner = verdict?.winner || null;
  const scores = verdict?.scores || {};
  const last = new Map();
  for (const col of columns.values()) {
    const member = col.el.dataset.member;
    const round = Number(col.el.dataset.round);
    if (!last.has(member) || round > Number(last.get(member).el.dataset.round)) last.set(member, col);
    col.el.classList.remove("is-winner");
    col.el.querySelector("[data-winner-badge]").hidden = true;
  }
  for (const [member, col] of last) {
    if (member in scores) {
      const score = field(col.el, "score");
      score.hidden = false;
      score.textContent = String(Number(scores[member]).toFixed(1)).replace(/\.0$/, "");
      const small = document.createElement("small");
      small.textContent = "/10";
      score.append(small);
    }
    if (winner && member === winner) {
      col.el.classList.add("is-winner");
      col.el.querySelector("[data-winner-badge]").hidden = false;
    }
  }
}

// --- panels (status, totals, verdict, calls): re-rendered by the server ------------------------

function refreshPanels(delay = 150) {
  clearTimeout(panelsTimer);
  panelsTimer = setTimeout(loadPanels, delay);
}

async function loadPanels() {
  if (panelsInFlight) {
    panelsAgain = true;
    return;
  }
  panelsInFlight = true;
  try {
    const response = await fetch(live.panelsUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const fresh of doc.querySelectorAll("[data-panel][id]")) {
      const current = document.getElementById(fresh.id);
      if (!current) continue;
      const node = document.importNode(fresh, true);
      current.replaceWith(node);
      if (window.htmx) window.htmx.process(node);
    }
    panelsSeq = lastSeq;
  } finally {
    panelsInFlight = false;
    if (panelsAgain) {
      panelsAgain = false;
      refreshPanels(0);
    }
  }
}

// --- events --------------------------------------------------------------------------------

function codePoints(text) {
  let n = 0;
  for (const _ of text || "") n += 1;
  return n;
}

function heldText(part, data) {
  // Every column and pass the server rendered was adopted at load; others hold nothing yet.
  return (data.kind === "judge" ? passes.get(part)?.text : columns.get(part)?.text) ?? "";
}

function lightSnapshotFits(state) {
  // Lengths are in code points, as the server counts them.
  return Object.entries(state.parts || {}).every(
    ([part, data]) => data.chars === undefined || codePoints(heldText(part, data)) === data.chars,
  );
}

function applySnapshot(message) {
  const state = message.state || {};
  const light = Boolean(message.light);
  if (light && !lightSnapshotFits(state)) {
    awaitingFull = true;
    socket?.send('"snapshot"');
    return;
  }
  awaitingFull = false;
  root.dataset.snapshots = String(Number(root.dataset.snapshots || 0) + 1);
  if (light) root.dataset.lightSnapshots = String(Number(root.dataset.lightSnapshots || 0) + 1);
  const run = state.run || {};
  for (const [part, data] of Object.entries(state.parts || {})) {
    if (data.kind === "candidate") syncCandidate(part, data, light);
    else if (data.kind === "judge") {
      const pass = judgePass(part, data);
      if (!light && pass.text !== (data.text || "")) {
        pass.text = data.text || "";
        pass.node.data = pass.text;
      }
      setPassMeta(pass, data);
    }
  }
  if (run.status) runStatus = run.status;
  if (run.verdict || run.judge_status === "done") endPasses("done");
  else if (run.judge_status === "failed") endPasses("failed");
  else if (TERMINAL.has(runStatus)) endPasses("done");
  markWinner(run.verdict || (run.winner ? { winner: run.winner } : null));
  if (message.seq > panelsSeq) refreshPanels(0);
}

function onCandidate(event) {
  const part = `${event.candidate}/${event.round}`;
  switch (event.type) {
    case "candidate.started": {
      const col = column(part, event);
      setText(col, "");
      col.rendered = null;
      delete col.el.dataset.userView;
      setStatus(col, "streaming");
      setMeta(col, { provider: event.provider, model: event.model, error: "" });
      break;
    }
    case "candidate.retrying": {
      // Before its first token only: a wait before trying again, or the next fallback model.
      const col = column(part, event);
      const delay = Number(event.delay_s);
      const wait = delay > 0 ? ` — trying again in ${delay.toFixed(1)} s` : "";
      setStatus(col, "retrying");
      setMeta(col, { model: event.model, error: `${event.error || "failed"}${wait}` });
      break;
    }
    case "candidate.delta": {
      const col = column(part, event);
      if (col.status === "queued" || col.status === "retrying") {
        setStatus(col, "streaming");
        setMeta(col, { error: "" });
      }
      append(col, event.text);
      col.el.querySelector("[data-placeholder]").textContent = "";
      break;
    }
    case "candidate.finished": {
      const col = column(part, event);
      setStatus(col, "done");
      setMeta(col, event);
      render(part, col);
      break;
    }
    case "candidate.failed": {
      const col = column(part, event);
      setStatus(col, event.status || "failed");
      setMeta(col, { error: event.error || "failed" });
      break;
    }
  }
}

function apply(event) {
  const type = event.type;
  if (type.startsWith("candidate.")) return onCandidate(event);
  switch (type) {
    case "run.started":
      runStatus = "running";
      refreshPanels();
      break;
    case "judge.started": {
      const pass = judgePass(`${event.judge}/${event.phase}`, { status: "streaming", labels: event.labels });
      pass.text = "";
      pass.node.data = "";
      setPassMeta(pass, { status: "streaming", labels: event.labels });
      refreshPanels();
      break;
    }
    case "judge.delta": {
      const pass = judgePass(`${event.judge}/${event.phase}`, null);
      pass.text += event.text;
      pass.node.appendData(event.text);
      break;
    }
    case "judge.finished":
      endPasses("done");
      markWinner(event.verdict);
      refreshPanels(0);
      break;
    case "judge.failed":
      endPasses("failed");
      refreshPanels(0);
      break;
    case "call.recorded":
      refreshPanels(300);
      break;
    case "run.finished":
    case "run.failed":
    case "run.cancelled":
      runStatus = type === "run.finished" ? event.status || "finished" : type.slice(4);
      if (event.winner) markWinner({ winner: event.winner, scores: {} });
      endPasses(type === "run.finished" ? "done" : "failed");
      refreshPanels(0);
      break;
  }
}

function onMessage(message) {
  if (message.type === "run.snapshot") {
    lastSeq = message.seq;
    backoff = 500;
    applySnapshot(message);
  } else if (message.seq <= lastSeq) {
    return; // already covered
  } else if (message.seq !== lastSeq + 1) {
    reconnect(); // a gap: the server heals it with a snapshot
    return;
  } else {
    lastSeq = message.seq;
    apply(message);
  }
  if (TERMINAL.has(runStatus) && !awaitingFull) finish();
}

// --- the connection --------------------------------------------------------------------------

function setConn(state, text) {
  if (!conn) return;
  conn.dataset.state = state;
  conn.querySelector(".conn-text").textContent = text;
}

function connect() {
  clearTimeout(reconnectTimer);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${live.socket}?after=${lastSeq}`);
  socket = ws;
  ws.onopen = () => setConn("live", "Live");
  ws.onmessage = (event) => {
    if (socket !== ws) return;
    try {
      onMessage(JSON.parse(event.data));
    } catch (error) {
      console.error("run: bad message", error);
      reconnect();
    }
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    if (finished) return;
    if (event.code === 4403 || event.code === 4404) {
      setConn("offline", "No access: reload the page");
      return;
    }
    scheduleReconnect();
  };
}

function reconnect() {
  const ws = socket;
  socket = null;
  if (ws) ws.close();
  scheduleReconnect(0);
}

function scheduleReconnect(delay = backoff) {
  if (finished) return;
  setConn("reconnecting", "Reconnecting…");
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(connect, delay);
  backoff = Math.min(backoff * 2, 10000);
}

function finish() {
  if (finished) return;
  finished = true;
  setConn("ended", "Ended");
  const ws = socket;
  socket = null;
  if (ws) ws.close(1000);
}

// --- page behaviour ----------------------------------------------------------------------------

root.addEventListener("click", (event) => {
  const toggle = event.target.closest("[data-action=toggle-view]");
  if (!toggle) return;
  const el = toggle.closest(".cand");
  const col = columns.get(el.dataset.part) || adopt(el);
  el.dataset.userView = "1";
  showView(col, el.dataset.view === "md" ? "raw" : "md");
});

document.addEventListener("visibilitychange", () => {
  // Browsers throttle or drop sockets of background tabs; make sure one is there on return.
  if (document.visibilityState === "visible" && !finished && !socket) connect();
});

root.querySelectorAll(".cand[data-part]").forEach(adopt);
root.querySelectorAll(".judge-pass[data-part]").forEach((el) => judgePass(el.dataset.part, null));
root.dataset.live = "1";
connect();
