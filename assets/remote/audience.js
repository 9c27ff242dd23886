// The audience page: one word (typed, or picked from the offered words), sent once; the answer
// is one line. It reaches nothing else of the show (performance/controllers/audience_page.py).
"use strict";
const answer = document.getElementById("answer");
const form = document.getElementById("send");
const input = document.getElementById("word");
const offer = document.getElementById("offer");

function say(text, ok) {
  answer.textContent = text;  // text, never HTML
  answer.className = ok ? "yes" : "no";
}

async function send(word) {
  for (const b of document.querySelectorAll("button")) b.disabled = true;
  try {
    const r = await fetch("audience/word", {method: "POST", headers: {"Content-Type": "application/json"},
                                            body: JSON.stringify({type: "word", word: word})});
    const got = await r.json();
    say(got.detail || (got.ok ? "thank you" : "not taken"), got.ok);
    if (got.ok) input.value = "";
  } catch (e) {
    say("the show could not be reached; try again", false);
  } finally {
    setTimeout(() => { for (const b of document.querySelectorAll("button")) b.disabled = false; }, 1000);
  }
}

async function start() {
  let o;
  try {
    o = await (await fetch("audience/offer", {cache: "no-store"})).json();
  } catch (e) {
    say("the show could not be reached; reload the page", false);
    return;
  }
  if (!o.open) say("words from the audience are closed just now", false);
  if (o.offer && o.offer.length) {
    offer.hidden = false;
    for (const w of o.offer) {
      const b = document.createElement("button");
      b.textContent = w;
      b.className = "choice";
      b.addEventListener("click", () => send(w));
      offer.appendChild(b);
    }
  } else {
    form.hidden = false;
    input.maxLength = o.max_chars || 24;
    form.addEventListener("submit", (ev) => { ev.preventDefault(); if (input.value.trim()) send(input.value.trim()); });
  }
}
start();
