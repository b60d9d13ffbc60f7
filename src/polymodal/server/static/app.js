// polymodal's web page: plain DOM code over the JSON API, no build step, nothing from third parties.
"use strict";

const $ = (sel) => document.querySelector(sel);
// the last search (for "More results"), its hits (for the viewer's arrows) and the browse cursor
const state = { query: null, offset: 0, hits: [], cursor: null, shown: -1 };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function api(path, options = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...options });
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error(body?.error?.message || `${r.status} ${r.statusText}`);
  return body;
}

function say(id, text, isError = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", isError);
}

// -- views ------------------------------------------------------------------------------------------------

function show(view) {
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  if (view === "jobs") refreshJobs();
}

// -- search -----------------------------------------------------------------------------------------------

function filterParams() {
  const p = new URLSearchParams();
  const add = (name, id) => { const v = $(id).value.trim(); if (v) p.append(name, v); };
  add("not", "#f-not"); add("after", "#f-after"); add("before", "#f-before"); add("path", "#f-path");
  add("tag", "#f-tag"); add("sort", "#f-sort"); add("type", "#f-type");
  p.set("k", String(Math.min(200, Math.max(1, parseInt($("#f-k").value, 10) || 24))));
  if ($("#f-all").checked) p.set("all", "true");  // past the relevance floor (searches only)
  return p;
}

function clock(seconds) {
  const m = Math.floor(seconds / 60), s = seconds - 60 * m;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

// A moment of a video or audio item: its segment's thumbnail, its time range and what is said, and a button
// that opens an HTML5 player at its start (media fragment #t=start,end; the server answers byte ranges).
function momentParts(hit) {
  if (hit.start === null || hit.start === undefined) return null;
  const range = `${clock(hit.start)}–${clock(hit.end)}`;
  const thumb = hit.segment ? `/api/items/${hit.id}/segments/${encodeURIComponent(hit.segment)}/thumbnail`
    : `/api/items/${hit.id}/thumbnail`;
  return { range, thumb };
}

function play(hit, cardNode) {
  for (const old of document.querySelectorAll(".moment-player")) old.remove();
  const tag = hit.kind === "audio" ? "audio" : "video";
  const player = el(tag, { class: "moment-player", controls: "", preload: "auto", "data-start": String(hit.start),
    src: `/api/items/${hit.id}/original#t=${hit.start},${hit.end}` });
  // the fragment starts it there; setting currentTime once metadata is in covers players that ignore it
  player.addEventListener("loadedmetadata", () => {
    if (Math.abs(player.currentTime - hit.start) > 0.5) player.currentTime = hit.start;
  }, { once: true });
  cardNode.querySelector(".meta").before(player);
  player.focus();
}

function card(hit) {
  const date = hit.date ? hit.date.slice(0, 10) : "";
  const name = hit.path.split("/").pop();
  const moment = momentParts(hit);
  const folder = hit.path.slice(0, hit.path.length - name.length);
  const node = el("li", { class: moment ? "card moment" : "card", "data-id": hit.id },
    el("a", { href: `/api/items/${hit.id}/original`, title: hit.path,
      onclick: (e) => { if (!e.ctrlKey && !e.metaKey) { e.preventDefault(); view(hit); } } },
      el("img", { src: moment ? moment.thumb : `/api/items/${hit.id}/thumbnail`, alt: name, loading: "lazy" })),
    el("div", { class: "meta" },
      el("span", { class: "score", text: `score ${hit.score.toFixed(3)}` }),
      ...(hit.confidence === null || hit.confidence === undefined ? []
        : [el("span", { class: "confidence", text: `${Math.round(hit.confidence * 100)}% sure`,
          title: "calibrated on labelled queries: how often a hit standing out this much was a right answer" })]),
      el("span", { class: "path", text: name, title: folder }),
      ...(moment ? [el("span", { class: "range", text: moment.range })] : []),
      ...(moment && hit.transcript ? [el("q", { class: "transcript", text: hit.transcript })] : []),
      el("time", { datetime: hit.date || "", text: date })),
    el("div", { class: "actions" },
      ...(moment ? [el("button", { type: "button", class: "play", text: `Play from ${clock(hit.start)}`,
        onclick: () => play(hit, node) })] : []),
      ...(hit.kind === "image" && state.query?.kind === "text" ? [el("button", { type: "button", class: "why",
        text: "Why this match", onclick: () => why(hit, node, state.query.text) })] : []),
      el("button", { type: "button", class: "similar", text: "More like this", onclick: () => similar(hit) })));
  return node;
}

// "Why this match": the picture with a heatmap of where the query's words match (POST /api/explain), in place
// of the thumbnail; a second click puts the thumbnail back.
async function why(hit, node, text) {
  const img = node.querySelector("img");
  const button = node.querySelector("button.why");
  if (img.dataset.thumb) {
    URL.revokeObjectURL(img.src);
    img.src = img.dataset.thumb;
    delete img.dataset.thumb;
    button.textContent = "Why this match";
    return;
  }
  const form = new FormData();
  form.append("q", text);
  form.append("item", hit.id);
  form.append("format", "png");
  button.disabled = true;
  try {
    const res = await fetch("/api/explain", { method: "POST", body: form });
    if (!res.ok) throw new Error((await res.json()).error?.message || `HTTP ${res.status}`);
    img.dataset.thumb = img.src;
    img.src = URL.createObjectURL(await res.blob());
    button.textContent = "Hide why";
  } catch (err) {
    say("#search-status", err.message, true);
  } finally {
    button.disabled = false;
  }
}

// -- the library without a query, and the address bar ------------------------------------------------------

// The library newest first, a page at a time (GET /api/items: by position, so nothing shifts between pages).
async function browse(append = false) {
  state.query = { kind: "browse", label: "the library" };
  const params = new URLSearchParams({ k: String(Math.min(200, parseInt($("#f-k").value, 10) || 24)) });
  if ($("#f-type").value) params.set("type", $("#f-type").value);
  if (append && state.cursor) params.set("cursor", state.cursor);
  try {
    const body = await api(`/api/items?${params}`);
    const grid = $("#grid");
    if (!append) { grid.replaceChildren(); state.hits = []; }
    for (const hit of body.hits) grid.append(card(hit));
    state.hits.push(...body.hits);
    state.cursor = body.next;
    $("#more").hidden = !body.next;
    say("#search-status", grid.children.length ? `the library, newest first (${grid.children.length} shown)`
      : "the library is empty: index a folder (the Index tab, or polymodal index DIR)");
  } catch (err) {
    say("#search-status", err.message, true);
  }
}

// The query, its filters and sort live in the address (?q=...&after=...), so a search can be linked,
// reloaded and undone with Back; ?like=ID is "more like this".
const URL_FIELDS = { not: "#f-not", after: "#f-after", before: "#f-before", path: "#f-path", tag: "#f-tag",
  sort: "#f-sort", type: "#f-type" };

function remember(query) {
  const p = new URLSearchParams();
  if (query.kind === "text") p.set("q", query.text);
  if (query.kind === "similar") p.set("like", query.id);
  for (const [name, id] of Object.entries(URL_FIELDS)) if ($(id).value.trim()) p.set(name, $(id).value.trim());
  if ($("#f-all").checked) p.set("all", "1");
  const next = p.toString() ? `?${p}` : location.pathname;
  if (`?${p}` !== location.search) history.pushState(null, "", next);
}

function fromAddress() {
  const p = new URLSearchParams(location.search);
  $("#q").value = p.get("q") || "";
  for (const [name, id] of Object.entries(URL_FIELDS)) $(id).value = p.get(name) || (name === "sort" ? "score" : "");
  $("#f-all").checked = p.get("all") === "1";
  if (p.get("q")) runSearch({ kind: "text", text: p.get("q"), label: `“${p.get("q")}”` }, false, false);
  else if (p.get("like")) runSearch({ kind: "similar", id: p.get("like"), label: "items like the one chosen" }, false, false);
  else browse();
}

// -- the viewer: a picture large, its metadata, arrows to the next hit --------------------------------------

function place(hit) {
  return hit.latitude === null || hit.latitude === undefined ? "" : `${hit.latitude.toFixed(5)}, ${hit.longitude.toFixed(5)}`;
}

function view(hit) {
  state.shown = state.hits.findIndex((h) => h.id === hit.id && h.start === hit.start);
  const moment = momentParts(hit);
  $("#v-img").src = hit.kind === "image" ? `/api/items/${hit.id}/original`
    : moment ? moment.thumb : `/api/items/${hit.id}/thumbnail`;
  $("#v-img").alt = hit.path.split("/").pop();
  const rows = [["Date", hit.date ? hit.date.slice(0, 19).replace("T", " ") : ""], ["Camera", hit.camera || ""],
    ["Place", place(hit)], ["Size", hit.width ? `${hit.width} × ${hit.height}` : ""], ["Path", hit.path]];
  if (moment) rows.splice(1, 0, ["Moment", moment.range]);
  $("#v-meta").replaceChildren(...rows.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", { text: k }),
    el("dd", { text: v })]));
  $("#v-original").href = `/api/items/${hit.id}/original`;
  $("#v-prev").disabled = state.shown <= 0;
  $("#v-next").disabled = state.shown < 0 || state.shown >= state.hits.length - 1;
  if (!$("#viewer").open) $("#viewer").showModal();
}

// Drag a box on the viewer's picture: search with that region of the library item (POST /api/search with
// item and box, in the picture's own pixels as displayed, which is what the browser shows).
const drag = { start: null };

function pointer(e) {
  const r = $("#v-img").getBoundingClientRect();
  return { x: Math.min(Math.max(e.clientX - r.left, 0), r.width), y: Math.min(Math.max(e.clientY - r.top, 0), r.height) };
}

function boxStyle(a, b) {
  const box = $("#v-box");
  const img = $("#v-img");
  box.hidden = false;
  box.style.left = `${img.offsetLeft + Math.min(a.x, b.x)}px`;
  box.style.top = `${img.offsetTop + Math.min(a.y, b.y)}px`;
  box.style.width = `${Math.abs(a.x - b.x)}px`;
  box.style.height = `${Math.abs(a.y - b.y)}px`;
}

async function searchRegion(a, b) {
  const img = $("#v-img");
  const hit = state.hits[state.shown];
  const sx = img.naturalWidth / img.clientWidth, sy = img.naturalHeight / img.clientHeight;
  const box = [Math.min(a.x, b.x) * sx, Math.min(a.y, b.y) * sy, Math.max(a.x, b.x) * sx, Math.max(a.y, b.y) * sy]
    .map((v) => Math.round(v));
  if (box[2] - box[0] < 8 || box[3] - box[1] < 8) { $("#v-box").hidden = true; return; }  // a click, not a box
  $("#viewer").close();
  $("#v-box").hidden = true;
  const form = new FormData();
  form.append("item", hit.id);
  form.append("box", box.join(","));
  for (const [k, v] of filterParams()) form.append(k, v);
  state.query = { kind: "region", label: `a part of ${hit.path.split("/").pop()}` };
  say("#search-status", "searching…");
  try {
    const body = await api("/api/search", { method: "POST", body: form });
    $("#grid").replaceChildren(...body.hits.map(card));
    state.hits = [...body.hits];
    $("#more").hidden = true;
    say("#search-status", `${body.hits.length} results for ${state.query.label} (${box.join(", ")})`);
  } catch (err) {
    say("#search-status", err.message, true);
  }
}

function step(by) {
  const next = state.shown + by;
  if (next >= 0 && next < state.hits.length) view(state.hits[next]);
}

async function runSearch(query, append = false, record = true) {
  if (record && !append) remember(query);
  state.query = query;
  state.offset = append ? state.offset : 0;
  const params = filterParams();
  params.set("offset", String(state.offset));
  say("#search-status", "searching…");
  try {
    let body;
    if (query.kind === "text") {
      params.append("q", query.text);
      body = await api(`/api/search?${params}`);
    } else if (query.kind === "similar") {
      body = await api(`/api/similar/${query.id}?${params}`);
    } else {
      const form = new FormData();
      form.append("image", query.file);
      for (const [k, v] of params) form.append(k, v);
      if ($("#q").value.trim()) form.append("q", $("#q").value.trim());
      body = await api("/api/search", { method: "POST", body: form });
    }
    const grid = $("#grid");
    if (!append) { grid.replaceChildren(); state.hits = []; }
    for (const hit of body.hits) grid.append(card(hit));
    state.hits.push(...body.hits);
    state.offset = body.offset + body.hits.length;
    $("#more").hidden = body.next_offset === null;
    const floored = query.kind === "text" && !$("#f-all").checked;
    say("#search-status", grid.children.length ? `${grid.children.length} results for ${query.label}`
      : floored ? `nothing stands out for ${query.label}; "Show weak matches too" shows the nearest`
        : `no results for ${query.label}`);
  } catch (err) {
    say("#search-status", err.message, true);
  }
}

// -- voice: record with the microphone (MediaRecorder), the server transcribes and searches --------------------

const voice = { recorder: null, chunks: [] };

async function toggleVoice() {
  const button = $("#mic");
  if (voice.recorder) {  // second click: stop; the recorder's stop event sends what was said
    voice.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    say("#search-status", `the microphone is not available: ${err.message}`, true);
    return;
  }
  voice.chunks = [];
  voice.recorder = new MediaRecorder(stream);
  voice.recorder.addEventListener("dataavailable", (e) => { if (e.data.size) voice.chunks.push(e.data); });
  voice.recorder.addEventListener("stop", async () => {
    for (const track of stream.getTracks()) track.stop();
    voice.recorder = null;
    button.textContent = "Speak";
    button.setAttribute("aria-pressed", "false");
    const blob = new Blob(voice.chunks, { type: voice.chunks[0]?.type || "audio/webm" });
    const form = new FormData();
    form.append("audio", blob, "query.webm");
    for (const [k, v] of filterParams()) form.append(k, v);
    say("#search-status", "listening to what you said…");
    try {
      const body = await api("/api/search/voice", { method: "POST", body: form });
      $("#q").value = body.transcript;
      state.query = { kind: "text", text: body.transcript, label: `“${body.transcript}” (heard)` };
      const grid = $("#grid");
      grid.replaceChildren(...body.hits.map(card));
      state.hits = [...body.hits];
      state.offset = body.offset + body.hits.length;
      $("#more").hidden = body.next_offset === null;
      say("#search-status", body.hits.length ? `${body.hits.length} results for ${state.query.label}`
        : `nothing stands out for ${state.query.label}`);
    } catch (err) {
      say("#search-status", err.message, true);
    }
  });
  voice.recorder.start();
  button.textContent = "Stop";
  button.setAttribute("aria-pressed", "true");
  say("#search-status", "recording: speak, then click Stop");
}

function similar(hit) {
  if ($("#viewer").open) $("#viewer").close();
  runSearch({ kind: "similar", id: hit.id, label: `items like ${hit.path.split("/").pop()}` });
}

function searchImage(file) {
  if (!file || !file.type.startsWith("image/")) { say("#search-status", "drop an image file", true); return; }
  runSearch({ kind: "image", file, label: `the image ${file.name}` });
}

// -- classify, generate, jobs -----------------------------------------------------------------------------

async function classify(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("image", $("#c-image").files[0]);
  form.append("labels", $("#c-labels").value);
  say("#classify-status", "classifying…");
  try {
    const body = await api("/api/classify", { method: "POST", body: form });
    const list = $("#classify-result");
    list.replaceChildren(...body.results[0].labels.map((l) => {
      const bar = el("span", { class: "bar" });
      bar.style.width = `${Math.max(1, Math.round(l.score * 100))}%`;  // CSSOM: allowed under the CSP
      return el("li", {}, el("span", { class: "label", text: l.label }), bar,
        el("span", { text: `${(l.score * 100).toFixed(1)}%` }));
    }));
    say("#classify-status", "");
  } catch (err) { say("#classify-status", err.message, true); }
}

async function generate(event) {
  event.preventDefault();
  say("#generate-status", "generating… (this can take a while)");
  try {
    const body = await api("/v1/images/generations", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt: $("#g-prompt").value, n: parseInt($("#g-n").value, 10) || 1 }),
    });
    $("#generate-result").replaceChildren(...body.data.map((d) => el("div", { class: "card" },
      el("img", { src: `data:image/png;base64,${d.b64_json}`, alt: $("#g-prompt").value }))));
    say("#generate-status", "");
  } catch (err) { say("#generate-status", err.message, true); }
}

let polling = null;

function jobItem(job) {
  const running = job.state === "queued" || job.state === "running" || job.state === "paused";
  const bar = el("progress", { max: String(job.total || 1), value: String(job.done), "aria-label": "progress" });
  const item = el("li", { "data-job": job.id },
    el("strong", { text: job.state }), el("span", { text: job.paths.join(", ") }), bar,
    el("span", { class: "count", text: `${job.done} / ${job.total}` }));
  if (job.error) item.append(el("span", { class: "error", text: job.error }));
  if (job.state === "running") item.append(el("button", { type: "button", class: "pause", text: "Pause",
    onclick: () => jobAction(job.id, "pause") }));
  if (job.state === "paused") item.append(el("button", { type: "button", class: "resume", text: "Resume",
    onclick: () => jobAction(job.id, "resume") }));
  if (running) item.append(el("button", { type: "button", text: "Cancel", onclick: () => cancelJob(job.id) }));
  return item;
}

async function refreshJobs() {
  try {
    const body = await api("/api/jobs");
    $("#jobs").replaceChildren(...body.jobs.map(jobItem));
    $("#job-roots").textContent = body.roots.length ? `folders this server may index: ${body.roots.join(", ")}`
      : "this server may not index new folders (start it with --root DIR)";
    const active = body.jobs.some((j) => j.state === "queued" || j.state === "running" || j.state === "paused");
    clearTimeout(polling);
    if (active) polling = setTimeout(refreshJobs, 500);
  } catch (err) { say("#job-status", err.message, true); }
}

async function startJob(event) {
  event.preventDefault();
  const path = $("#j-path").value.trim();
  try {
    await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ paths: path ? [path] : [] }) });
    say("#job-status", "indexing started");
  } catch (err) { say("#job-status", err.message, true); }
  refreshJobs();
}

async function jobAction(id, action) {
  try { await api(`/api/jobs/${id}/${action}`, { method: "POST" }); } catch (err) { say("#job-status", err.message, true); }
  refreshJobs();
}

async function cancelJob(id) {
  try { await api(`/api/jobs/${id}`, { method: "DELETE" }); } catch (err) { say("#job-status", err.message, true); }
  refreshJobs();
}

// -- wiring -----------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => show(tab.dataset.view));
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("#q").value.trim();
    if (text) runSearch({ kind: "text", text, label: `“${text}”` });
    else { remember({ kind: "browse" }); browse(); }  // an empty query: back to the library
  });
  $("#image-input").addEventListener("change", (e) => searchImage(e.target.files[0]));
  $("#mic").addEventListener("click", toggleVoice);
  // the switch answers at once: the same query again, with or without the weak matches
  const again = () => {
    if (state.query?.kind === "browse") browse();
    else if (state.query) runSearch(state.query);
  };
  $("#f-all").addEventListener("change", again);
  $("#f-type").addEventListener("change", again);
  $("#more").addEventListener("click", () => {
    if (state.query?.kind === "browse") browse(true);
    else if (state.query) runSearch(state.query, true);
  });
  $("#v-prev").addEventListener("click", () => step(-1));
  $("#v-next").addEventListener("click", () => step(1));
  $("#v-close").addEventListener("click", () => $("#viewer").close());
  $("#v-similar").addEventListener("click", () => state.hits[state.shown] && similar(state.hits[state.shown]));
  $("#viewer").addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight") { e.preventDefault(); step(1); }
    if (e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
  });
  $("#v-img").addEventListener("pointerdown", (e) => {
    if ($("#v-img").naturalWidth && state.hits[state.shown]?.kind === "image") {
      drag.start = pointer(e);
      $("#v-img").setPointerCapture(e.pointerId);
    }
  });
  $("#v-img").addEventListener("pointermove", (e) => { if (drag.start) boxStyle(drag.start, pointer(e)); });
  $("#v-img").addEventListener("pointerup", (e) => {
    if (!drag.start) return;
    const a = drag.start;
    drag.start = null;
    searchRegion(a, pointer(e));
  });
  window.addEventListener("popstate", fromAddress);
  fromAddress();
  const zone = $("#drop-zone");
  // the whole page takes drops, so a photo dragged anywhere becomes the query
  document.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  document.addEventListener("dragleave", () => zone.classList.remove("over"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    searchImage(e.dataTransfer?.files?.[0]);
  });
  $("#classify-form").addEventListener("submit", classify);
  $("#generate-form").addEventListener("submit", generate);
  $("#job-form").addEventListener("submit", startJob);
  try {
    const v = await api("/api/version");
    $("#version").textContent = `polymodal ${v.polymodal} · ${v.model}`;
    $("#generate-tab").hidden = !v.generator;
  } catch (err) { $("#version").textContent = err.message; }
});
