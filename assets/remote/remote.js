// Lectern remote: a WebSocket to the show; buttons send commands, the state arrives from the show.
"use strict";
const $ = (id) => document.getElementById(id);
let ws = null, nextId = 1, state = {}, scenes = [], authorised = false, dragging = {};
const PANIC_HOLD_MS = 500;

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${proto}//${location.host}/ws`);
  ws.onopen = () => setStatus(true, "connected");
  ws.onclose = () => { setStatus(false, "reconnecting…"); authorised = false; setTimeout(connect, 1000); };
  ws.onmessage = (ev) => handle(JSON.parse(ev.data));
}

function setStatus(on, text) { const s = $("status"); s.className = on ? "on" : "off"; s.textContent = text; }

function send(address, args = []) {
  if (!ws || ws.readyState !== 1) return;
  ws.send(JSON.stringify({ type: "command", address: `/lectern/${address}`, args, id: nextId++ }));
}

function handle(m) {
  if (m.type === "hello") {
    scenes = m.scenes || [];
    if (m.passcode) {
      const saved = localStorage.getItem("lectern-passcode");
      $("login").hidden = false;
      if (saved) ws.send(JSON.stringify({ type: "connect", passcode: saved }));
    } else {
      authorised = true;
    }
    drawScenes();
  } else if (m.type === "auth") {
    authorised = m.ok;
    $("login").hidden = m.ok;
    $("login-error").textContent = m.ok ? "" : m.detail;
    if (m.ok) localStorage.setItem("lectern-passcode", $("passcode").value || localStorage.getItem("lectern-passcode") || "");
    else localStorage.removeItem("lectern-passcode");
  } else if (m.type === "reply") {
    const r = $("reply");
    r.textContent = `${(m.address || "").replace("/lectern/", "")}: ${m.detail}`;
    r.className = m.ok ? "" : "error";
  } else if (m.type === "state") {
    state = m.state;
    drawState();
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
  drawScenes();
}

function drawScenes() {
  const ol = $("scenes");
  const cur = state.scene ? state.scene[0] : 0, sb = state.standby ? state.standby[0] : 0;
  if (ol.children.length !== scenes.length) {
    ol.innerHTML = "";
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
$("release").onclick = () => send("temperature/release");
$("pause").onclick = () => send(state.paused ? "resume" : "pause");
$("connect").onclick = () => ws.send(JSON.stringify({ type: "connect", passcode: $("passcode").value }));
slider("temperature");
slider("volume");
panicButton();
connect();
