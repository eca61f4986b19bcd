// The fast labeling page (workbench/labeling/page.py): blind A/B labeling by keyboard on /api/labeling.
//
// One request per vote: its answer carries the next pair, which is shown at once. Keys pressed
// while a request is on its way wait in `queue` and are applied in order once its answer is
// on screen, so none is lost, none lands on the old pair, and none is typed into the rationale
// box after its Ctrl+Enter (the box is left before the skip is sent). Pair texts are user
// data: they are only ever set with textContent. The session, name and token stay in
// localStorage, so a reload resumes on the same pair (the server keeps it reserved).
"use strict";
(() => {
  const API = "/api/labeling";
  const CHOICE_KEYS = {"1": "left", a: "left", "2": "right", b: "right", "3": "tie", t: "tie",
                       "4": "both_bad", x: "both_bad", "5": "skip", s: "skip"};
  const KEY_OF_CHOICE = {left: "1", right: "2", tie: "3", both_bad: "4", skip: "5"};
  const ASPECT_KEYS = {"6": 0, "7": 1, "8": 2, "9": 3};
  const ASPECT_CYCLE = [undefined, "left", "right", "tie"];
  const QUEUED = new Set(["Enter", "Backspace", "Escape"]);  // besides single characters
  const RETRIES = 3;  // network failures only; every vote carries a request_id, so a resend is safe
  const POLL_MS = 10000;

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const box = $("rationale");
  const path = location.pathname.replace(/\/+$/, "");
  const session = path.startsWith("/label/") ? decodeURIComponent(path.slice("/label/".length)) : null;
  const storageKey = `wb-label:${session}`;

  let me = {user: null, role: "owner"};
  let aspects = [];
  let who = null;  // {annotator, token} once joined
  let item = null;  // the pair on screen
  let shownAt = 0;
  let strength = 2;
  let chosen = {};  // aspect name -> "left" | "right" | "tie"
  let skipping = false;
  let busy = false;
  let pollTimer = null;
  let votesSinceBias = 0;
  const BIAS_EVERY = 5;  // owner's bias panel: refreshed every this many votes
  const queue = [];

  class ApiError extends Error {
    constructor(status, message, hint) { super(message); this.status = status; this.hint = hint; }
  }

  async function api(url, {method = "GET", body, token} = {}) {
    const headers = {accept: "application/json"};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (token) headers["x-annotator-token"] = token;
    let response;
    for (let attempt = 0; ; attempt++) {
      try {
        response = await fetch(API + url, {method, headers, cache: "no-store", credentials: "same-origin",
                                           body: body === undefined ? undefined : JSON.stringify(body)});
        break;
      } catch {
        if (attempt >= RETRIES) throw new ApiError(0, "The server cannot be reached.", "Check that it still runs, then press the key again.");
        await new Promise((resolve) => setTimeout(resolve, 300 * 2 ** attempt));
      }
    }
    let data = null;
    try { data = await response.json(); } catch { /* not JSON: a proxy's or the login's page */ }
    if (!response.ok) throw new ApiError(response.status, data?.error ?? `The server answered ${response.status}.`, data?.hint ?? "");
    return data;
  }

  const requestId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  const mine = (rest) => `/sessions/${enc(session)}/annotators/${enc(who.annotator)}${rest}`;
  const promptText = (p) => (typeof p === "string" ? p : p.map((m) => `${m.role}: ${m.content}`).join("\n\n"));
  const displayed = (outcome, order) => (outcome === "A" || outcome === "B" ? (order[0] === outcome ? "left" : "right") : outcome);

  function say(text, error = false) {
    $("message").textContent = text;
    $("message").classList.toggle("error", error);
  }

  function show(section) {
    for (const id of ["sessions", "join", "labeling"]) $(id).hidden = id !== section;
  }

  // -- what is on screen -------------------------------------------------------------------

  function renderChoices() {
    for (const b of document.querySelectorAll("[data-strength]")) b.setAttribute("aria-pressed", String(Number(b.dataset.strength) === strength));
    aspects.forEach((name, i) => {
      const b = $(`aspect-${i}`);
      b.lastChild.textContent = ` ${name}: ${chosen[name] ?? "—"}`;
      b.setAttribute("aria-pressed", String(name in chosen));
    });
  }

  function showItem(it, note = "") {
    clearTimeout(pollTimer);
    item = it;
    shownAt = Date.now() / 1000;
    const current = it.current;
    strength = current?.strength ?? 2;
    chosen = {};
    for (const [name, outcome] of Object.entries(current?.aspects ?? {})) chosen[name] = displayed(outcome, it.displayed_order);
    skipping = false;
    $("prompt").textContent = promptText(it.prompt);
    $("left").textContent = it.left;
    $("right").textContent = it.right;
    box.value = current?.rationale ?? "";
    box.classList.remove("needed");
    $("progress").textContent = current
      ? `Changing your vote (${displayed(current.outcome, it.displayed_order)}) on pair ${it.position} of ${it.total}`
      : `Pair ${it.position} of ${it.total} · ${it.position - 1} done`;
    renderChoices();
    show("labeling");
    say(note);
  }

  async function showNext(next, note = "") {
    if (next.item) {
      showItem(next.item, note);
      return;
    }
    item = null;
    show(null);
    clearTimeout(pollTimer);
    if (next.waiting) {
      say(`${note} Nothing free right now: the pairs left are being judged by others. Checking again in ${POLL_MS / 1000} s.`.trim());
      pollTimer = setTimeout(() => (busy ? null : run(fetchNext)), POLL_MS);
      return;
    }
    const progress = await api(mine("/progress"), {token: who.token});
    let verdict = "";
    if (me.role === "owner") {  // annotators stay blind to the tally
      const stats = await api(`/sessions/${encodeURIComponent(session)}/stats`);
      verdict = ` ${stats.stopping_hint} ${(stats.lines ?? []).join(" · ")}`;
    }
    say(`${note} All done: ${progress.done} pairs judged in this session. Thank you! (u undoes your last vote.)${verdict}`.trim());
  }

  // -- talking to the server ----------------------------------------------------------------

  async function fetchNext(note = "") {
    await showNext(await api(mine("/next"), {token: who.token}), note);
  }

  async function join(name, note = "") {
    const answer = await api(`/sessions/${enc(session)}/annotators`, {method: "POST", body: {name, recover: true}});
    who = {annotator: answer.annotator, token: answer.token};
    localStorage.setItem(storageKey, JSON.stringify(who));
    document.activeElement?.blur();  // leave the name box: keys now label
    $("who").textContent = `Labeling as ${who.annotator}`;
    await fetchNext(`${note} ${answer.resumed ? `Welcome back, ${who.annotator}: your queue continues.` : `Joined as ${who.annotator}.`}`.trim());
  }

  async function vote(choice) {
    const it = item;
    const body = {pair_id: it.pair_id, choice, displayed_order: it.displayed_order, started_at: shownAt,
                  request_id: requestId(), aspects: chosen, rationale: box.value, edit: Boolean(it.current)};
    if (choice === "left" || choice === "right") body.strength = strength;
    const answer = await api(mine("/votes"), {method: "POST", body, token: who.token});
    await showNext(answer.next, choice === "skip" ? "✓ Skipped." : "✓ Saved.");
    if (choice !== "skip") tellTheTab(it);
    if (me.role === "owner") showSelection();  // not awaited, like the bias panel
    if (me.role === "owner" && ++votesSinceBias >= BIAS_EVERY) {
      votesSinceBias = 0;
      showBias();  // not awaited: the next vote never waits for the statistics
    }
  }

  // Embedded in the Labeling tab: tell it which pair was just voted on (and in which order it was
  // shown), so it can show the session's model scores for it, after the vote and never before.
  function tellTheTab(it) {
    if (window.parent === window) return;
    window.parent.postMessage({type: "wb-label-voted", session, annotator: who.annotator, pair_id: it.pair_id,
                               displayed_order: it.displayed_order}, location.origin);
  }

  // The owner watches position and length effects while labeling: each with its interval and
  // the votes it needs, a warning once the interval excludes ½ (annotators never see this).
  async function showBias() {
    try {
      const stats = await api(`/sessions/${enc(session)}/stats`);
      const lines = (stats.bias ?? []).map((b) => b.warning ? `⚠ ${b.warning}` : b.n
        ? `${b.effect}: ${b.wins} wins ${b.rate.toFixed(2)} [${b.ci[0].toFixed(2)}, ${b.ci[1].toFixed(2)}] of ${b.n}; ${b.note}` : "");
      $("bias").textContent = lines.filter(Boolean).join(" · ");
      $("bias").classList.toggle("warn", (stats.warnings ?? []).length > 0);
      $("bias").hidden = !$("bias").textContent;
    } catch { /* the statistics are a side panel: a failure here must not disturb labeling */ }
  }

  // A model-uncertain session: what its order does now (refits, votes since the last, the head's
  // held-out accuracy, the feature model), from the session's progress; one cheap read per vote.
  async function showSelection() {
    try {
      const sel = (await api(`/sessions/${enc(session)}`)).progress?.selection;
      const acc = (a) => a ? `${a.rate.toFixed(2)} [${a.ci[0].toFixed(2)}, ${a.ci[1].toFixed(2)}] of ${a.n}` : "—";
      $("selection").textContent = sel
        ? `Order model-uncertain: ${sel.doing} · refits ${sel.refits} · ${sel.votes_since_refit} votes since the last`
          + ` (every ${sel.refit_every})${sel.features ? ` · features ${sel.features}` : ""}`
          + (sel.heldout_accuracy ? ` · held-out accuracy ${acc(sel.heldout_accuracy)}` : "")
          + (sel.self_accuracy ? ` · on its own votes ${acc(sel.self_accuracy)}` : "") : "";
      $("selection").hidden = !sel;
    } catch { /* a side panel, like the bias: never in the way of labeling */ }
  }

  async function undo() {
    const answer = await api(mine("/undo"), {method: "POST", body: {request_id: requestId()}, token: who.token});
    const pair = answer.ack.pair_id;
    const it = answer.next.item?.pair_id === pair ? answer.next.item : await api(mine(`/items/${enc(pair)}`), {token: who.token});
    showItem(it, "↶ Vote undone: judge this pair again.");
  }

  // One request at a time; keys pressed meanwhile are applied once its answer is on screen.
  async function run(action) {
    busy = true;
    try {
      await action();
    } catch (err) {
      const dropped = queue.splice(0).length;  // they were meant for pairs that did not come
      const text = err instanceof ApiError ? `${err.message} ${err.hint}`.trim() : `Unexpected error: ${err}`;
      say(dropped ? `${text} (${dropped} key(s) typed after it were not applied.)` : text, true);
    } finally {
      busy = false;
    }
    while (queue.length && !busy) apply(queue.shift(), true);
  }

  // -- keys -----------------------------------------------------------------------------------

  function startSkip() {
    skipping = true;
    box.classList.add("needed");
    box.focus();
    say("Why skip this pair? Type the reason, then Ctrl+Enter (Esc cancels).");
  }

  function typeInto(key) {  // a key queued while a request was on its way, now typed into the box
    if (key === "Backspace") {
      const start = box.selectionStart === box.selectionEnd ? Math.max(0, box.selectionStart - 1) : box.selectionStart;
      box.setRangeText("", start, box.selectionEnd, "end");
    } else if (key === "Enter" || key.length === 1) {
      box.setRangeText(key === "Enter" ? "\n" : key, box.selectionStart, box.selectionEnd, "end");
    }
  }

  function cycleAspect(name) {
    const next = ASPECT_CYCLE[(ASPECT_CYCLE.indexOf(chosen[name]) + 1) % ASPECT_CYCLE.length];
    if (next === undefined) delete chosen[name];
    else chosen[name] = next;
    renderChoices();
  }

  // Apply one key (``replay``: it was queued, so text for the box is typed in here). True when handled.
  function apply(k, replay) {
    if (document.activeElement === box) {
      if (k.key === "Escape") {
        box.blur();
        skipping = false;
        box.classList.remove("needed");
        say("");
        return true;
      }
      if (k.key === "Enter" && k.ctrl) {
        box.blur();
        if (skipping && item) run(() => vote("skip"));
        else say("Rationale kept: it goes with your next vote (1–4).");
        return true;
      }
      if (replay) typeInto(k.key);
      return replay;
    }
    if (k.ctrl) return false;
    const key = k.key.length === 1 ? k.key.toLowerCase() : k.key;
    if (key === "u" || key === "Backspace") {
      run(undo);
      return true;
    }
    if (!item) return false;
    const choice = CHOICE_KEYS[key];
    if (choice === "skip" && !box.value.trim()) startSkip();
    else if (choice) run(() => vote(choice));
    else if (key in ASPECT_KEYS && aspects[ASPECT_KEYS[key]]) cycleAspect(aspects[ASPECT_KEYS[key]]);
    else if (key === "q" || key === "w") {
      strength = key === "q" ? 1 : 2;
      renderChoices();
    } else return false;
    return true;
  }

  function press(k, ev) {
    if (busy) {
      if (k.key.length === 1 || QUEUED.has(k.key)) {
        queue.push(k);
        ev?.preventDefault();
      }
      return;
    }
    if (apply(k, false)) ev?.preventDefault();
  }

  document.addEventListener("keydown", (ev) => {
    if (!who || ev.isComposing || ev.altKey || ev.key === "Tab") return;  // the join form and lists take ordinary keys
    const ctrl = ev.ctrlKey || ev.metaKey;
    if (ctrl && ev.key !== "Enter") return;  // the browser's own shortcuts (and Ctrl itself)
    press({key: ev.key, ctrl}, ev);
  });

  // Every key has a button too (the keyboard is a shortcut, never the only way).
  const clickAs = (key) => (ev) => {
    ev.currentTarget.blur();  // so a later Space or Enter does not click it again
    press({key, ctrl: false}, null);
  };
  for (const b of document.querySelectorAll("[data-choice]")) b.addEventListener("click", clickAs(KEY_OF_CHOICE[b.dataset.choice]));
  for (const b of document.querySelectorAll("[data-strength]")) b.addEventListener("click", clickAs(b.dataset.strength === "1" ? "q" : "w"));
  $("undo").addEventListener("click", clickAs("u"));
  $("join").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("name").value.trim();
    if (name) run(() => join(name));
  });

  function buildAspects() {
    const row = $("aspects");
    row.replaceChildren();
    aspects.forEach((name, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.id = `aspect-${i}`;
      if (i < 4) {
        const kbd = document.createElement("kbd");
        kbd.textContent = String(6 + i);
        b.append(kbd);
      }
      b.append(document.createTextNode(""));
      b.addEventListener("click", (ev) => {
        ev.currentTarget.blur();
        if (!busy && item) cycleAspect(name);
      });
      row.append(b);
    });
  }

  // -- start ----------------------------------------------------------------------------------

  async function listSessions() {
    const {sessions} = await api("/sessions");
    const open = sessions.filter((s) => s.status === "open");
    const list = $("session-list");
    list.replaceChildren(...open.map((s) => {
      const a = document.createElement("a");
      a.href = `/label/${enc(s.name)}`;
      a.textContent = `${s.name} (${s.n_pairs} pairs)`;
      const li = document.createElement("li");
      li.append(a);
      return li;
    }));
    show("sessions");
    say(open.length ? "Choose a session." : "No session is open for you. The owner creates one in the Labeling tab or with `workbench label create`.");
  }

  async function start() {
    show(null);
    me = await api("/me");
    if (me.user) $("who").textContent = `Logged in as ${me.user}`;
    if (!session) return listSessions();
    $("title").textContent = `Labeling · ${session}`;
    document.title = `${session} · Labeling`;
    const info = await api(`/sessions/${enc(session)}`);
    if (info.status !== "open") {
      say(`Session '${session}' is closed: it takes no more votes. Ask the owner to reopen it.`, true);
      return;
    }
    aspects = info.settings.aspects;
    buildAspects();
    if (me.role === "owner") showSelection();
    let saved = null;
    try { saved = JSON.parse(localStorage.getItem(storageKey) ?? "null"); } catch { /* unreadable: join again */ }
    let note = "";
    if (saved?.annotator && saved?.token) {
      who = saved;
      $("who").textContent = `Labeling as ${who.annotator}`;
      try {
        await fetchNext("Resumed where you left off.");
        return;
      } catch (err) {
        if (!(err instanceof ApiError) || (err.status !== 403 && err.status !== 404)) throw err;
        who = null;  // a token that is wrong here, or a name this session does not know: join again
        note = `${err.message}`;
      }
    }
    if (me.user) {
      await join(me.user, note);
      return;
    }
    $("name").value = saved?.annotator ?? "";
    show("join");
    say(note ? `${note} Start again under your name to get your queue back.` : "Enter your name, then Start.", Boolean(note));
    $("name").focus();
  }

  run(start);
})();
