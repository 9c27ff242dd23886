// Lectern remote: a WebSocket to the show; buttons send commands, the state arrives from the show.
"use strict";
const $ = (id) => document.getElementById(id);
let ws = null, nextId = 1, state = {}, scenes = [], authorised = false, dragging = {}, waitingForCode = false;
const PANIC_HOLD_MS = 500;
const TOKEN_KEY = "lectern-token";

// The address the show announces (and its QR code) ends in #token=...: keep it, then hide it.
(function takeToken() {
  const m = /(?:^#|&)token=([A-Za-z0-9_-]{16,128})/.exec(location.hash);
  if (m) {
    localStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

function connect(then) {
  if (ws && ws.readyState <= 1) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const token = localStorage.getItem(TOKEN_KEY);
  ws = new WebSocket(`${proto}//${location.host}/ws` + (token ? `?token=${encodeURIComponent(token)}` : ""));
  ws.onopen = () => { setStatus(true, "connected"); if (then) then(); };
  ws.onclose = () => {
    const was = authorised;
    authorised = false;
    ws = null;
    // a page waiting for its passcode does not hold a socket open: it connects again on Connect
    if (was || !waitingForCode) { setStatus(false, "reconnecting…"); setTimeout(() => connect(), 1000); }
    else setStatus(false, "enter the passcode");
  };
  ws.onmessage = (ev) => handle(JSON.parse(ev.data));
}

function sendConnect(code) {
  const msg = JSON.stringify({ type: "connect", passcode: code });
  if (ws && ws.readyState === 1) ws.send(msg);
  else connect(() => ws.send(msg));
}

function setStatus(on, text) { const s = $("status"); s.className = on ? "on" : "off"; s.textContent = text; }

function send(address, args = []) {
  if (!authorised && (!ws || ws.readyState !== 1)) {
    showReply(address, false, "enter the passcode first");
    return;
  }
  if (!ws || ws.readyState !== 1) return;
  ws.send(JSON.stringify({ type: "command", address: `/lectern/${address}`, args, id: nextId++ }));
}

function showReply(address, ok, detail) {
  const r = $("reply");
  r.textContent = `${(address || "").replace("/lectern/", "")}: ${detail}`;
  r.className = ok ? "" : "error";
}

function handle(m) {
  if (m.type === "hello") {
    if (m.token_refused) localStorage.removeItem(TOKEN_KEY);  // an older show's token
    if (m.authorised) return;  // the token opened the socket: "auth" follows
    waitingForCode = true;
    $("login").hidden = false;
    $("login-error").textContent = m.passcode ? "" : "open the address the show printed (or scan its QR code)";
    localStorage.removeItem("lectern-passcode");  // older pages kept it; the token replaces it
  } else if (m.type === "auth") {
    authorised = m.ok;
    if (m.ok) {
      waitingForCode = false;
      if (m.token) localStorage.setItem(TOKEN_KEY, m.token);  // reconnects need no passcode
      if (m.scenes) scenes = m.scenes;
      if (m.commands) applyCommands(m.commands);
      drawScenes();
    }
    $("login").hidden = m.ok;
    $("login-error").textContent = m.ok ? "" : m.detail;
  } else if (m.type === "reply") {
    showReply(m.address, m.ok, m.detail.replace(/^auth: /, ""));
  } else if (m.type === "state") {
    state = m.state;
    if (state.scenes) scenes = state.scenes;  // the setlist was reloaded: its scenes as they are now
    drawState();
  }
}

// The controls follow the show's command table: a fader's range, a button's help text, and a
// control whose command the show does not offer is hidden (nothing on this page restates a bound).
function applyCommands(commands) {
  const byName = Object.fromEntries(commands.map((c) => [c.name, c]));
  for (const el of document.querySelectorAll("[data-command]")) {
    const c = byName[el.dataset.command];
    el.hidden = !c;
    if (!c) continue;
    el.title = c.does;
    if (el.type === "range" && c.min !== undefined) { el.min = c.min; el.max = c.max; }
  }
}

function fmt(x, d = 2) { return typeof x === "number" ? x.toFixed(d) : "–"; }

function drawState() {
  const s = state;
  if (s.scene) $("scene").textContent = `${s.scene[0]}. ${s.scene[1]}`;
  $("standby").textContent = s.standby && s.standby[0] ? `standing by: ${s.standby[0]}. ${s.standby[1]}` : "";
  if (s.poem) $("poem").textContent = s.poem[1] ? `${s.poem[0]} of ${s.poem[1]}` : `${s.poem[0]}`;
  $("seed").textContent = s.seed ?? "–";
  $("model").textContent = s.model ?? "–";
  $("temp-value").textContent = fmt(s.temperature) + (s.override != null ? " (override)" : "");
  $("volume-value").textContent = fmt(s.volume);
  if (!dragging.temperature && typeof s.temperature === "number") $("temperature").value = s.temperature;
  if (!dragging.volume && typeof s.volume === "number") $("volume").value = s.volume;
  if (s.health) {
    $("fps").textContent = fmt(s.health[1], 1);
    $("health").textContent = `up ${Math.round(s.health[0])} s · ${s.health[2]} poems · ${s.health[3]} restarts · ${fmt(s.health[4], 0)} MB`;
  }
  $("learn").textContent = s.learn || "–";
  const p = $("pause");
  p.textContent = s.paused ? "RESUME" : "PAUSE";
  p.classList.toggle("paused", !!s.paused);
  // cue timing: the next automatic start, counted down here between states (they come about once a second)
  cueUntil = typeof s.countdown === "number" ? Date.now() + s.countdown * 1000 : null;
  drawCue();
  const ed = $("edit");  // an edit on disk that was refused: the show goes on with the running version
  ed.textContent = s.reload_error ? `edit refused: ${s.reload_error}` : "";
  ed.hidden = !s.reload_error;
  drawScenes();
  drawChoices();
}

// co-writing: the candidates on stage for the next word, one button each (choose N)
function drawChoices() {
  const words = Array.isArray(state.offer) ? state.offer : [], box = $("choice-buttons");
  $("choices").hidden = !words.length;
  $("choice-left").textContent = typeof state.offer_left === "number" ? `${Math.ceil(state.offer_left)} s` : "";
  if (box.dataset.words === JSON.stringify(words)) return;
  box.dataset.words = JSON.stringify(words);
  box.innerHTML = "";
  words.forEach((word, i) => {
    const b = document.createElement("button");
    b.id = `choose-${i + 1}`;
    b.textContent = `${i + 1} ${word}`;
    b.onclick = () => send("choose", [i + 1]);
    box.appendChild(b);
  });
}

let cueUntil = null;
function drawCue() {
  const s = state, el = $("cue");
  if (!s.next_auto || !s.next_auto[0]) { el.textContent = s.running && !s.running[0] && s.state === "cue_wait" ? "waiting" : ""; return; }
  const what = `next: ${s.next_auto[0]}. ${s.next_auto[1]}`;
  if (cueUntil === null) { el.textContent = `${what} when this scene ends`; return; }
  const left = s.paused ? Math.ceil(s.countdown) : Math.max(0, Math.ceil((cueUntil - Date.now()) / 1000));
  const wait = s.cue_wait ? ` (${s.cue_wait.replace("_", "-")})` : "";
  el.textContent = `${what} in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}${wait}`;
}
setInterval(drawCue, 250);

function drawScenes() {
  const ol = $("scenes");
  const cur = state.scene ? state.scene[0] : 0, sb = state.standby ? state.standby[0] : 0;
  if (ol.children.length !== scenes.length || ol.dataset.names !== JSON.stringify(scenes)) {
    ol.innerHTML = "";
    ol.dataset.names = JSON.stringify(scenes);
    scenes.forEach((name, i) => {
      const li = document.createElement("li");
      li.textContent = `${i + 1}. ${name}`;
      li.dataset.n = i + 1;
      li.onclick = () => send("scene", [i + 1]);
      ol.appendChild(li);
    });
  }
  [...ol.children].forEach((li) => {
    li.classList.toggle("current", +li.dataset.n === cur);
    li.classList.toggle("standby", +li.dataset.n === sb);
  });
}

function slider(id) {
  const el = $(id);
  let queued = false;
  const start = () => { dragging[id] = true; };
  const end = () => { dragging[id] = false; };
  el.addEventListener("pointerdown", start);
  el.addEventListener("pointerup", end);
  el.addEventListener("pointercancel", end);
  el.addEventListener("change", () => { end(); send(id, [parseFloat(el.value)]); });
  el.addEventListener("input", () => {  // at most one value per animation frame
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; send(id, [parseFloat(el.value)]); });
  });
}

function panicButton() {
  // held for 0.5 s so a pocket cannot panic the show
  const b = $("panic"), fill = b.querySelector(".fill");
  let timer = null, t0 = 0, raf = 0;
  const grow = () => { fill.style.width = `${Math.min(100, (performance.now() - t0) / PANIC_HOLD_MS * 100)}%`; raf = requestAnimationFrame(grow); };
  const cancel = () => { clearTimeout(timer); timer = null; cancelAnimationFrame(raf); fill.style.width = "0"; };
  b.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    t0 = performance.now();
    grow();
    timer = setTimeout(() => { send("panic"); cancel(); }, PANIC_HOLD_MS);
  });
  ["pointerup", "pointerleave", "pointercancel"].forEach((ev) => b.addEventListener(ev, cancel));
  b.addEventListener("contextmenu", (e) => e.preventDefault());
}

$("go").onclick = () => send("go");
$("back").onclick = () => send("back");
$("keep").onclick = () => send("keep");
$("reseed").onclick = () => send("reseed");
$("reload").onclick = () => send("reload");
$("release").onclick = () => send("temperature/release");
$("pause").onclick = () => send(state.paused ? "resume" : "pause");
$("connect").onclick = () => sendConnect($("passcode").value);
slider("temperature");
slider("volume");
panicButton();
connect();
