// The pressedplay page: pick or drop a picture, see its features and playlist, refine by
// genre, judge it, save it to Spotify. Everything goes through the server's JSON API;
// text from the server is only ever set as text (never parsed as HTML).
"use strict";

const $ = (selector) => document.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";
const state = { config: null, file: null, playlist: null, genres: new Set(), judged: false, asked: 0 };

function svg(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function element(name, attributes = {}, text) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- messages ------------------------------------------------------------------------
function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

function notice(text, link) {
  const box = $("#notice");
  box.replaceChildren(text);
  if (link) {
    box.append(" ", element("a", { href: link, target: "_blank", rel: "noopener" }, link));
  }
}

// --- the API -------------------------------------------------------------------------
const BUSY_RETRIES = 5; // a busy server (503) says when to come back: Retry-After

async function api(path, form) {
  let response;
  for (let attempt = 0; ; attempt++) {
    try {
      response = form ? await fetch(path, { method: "POST", body: form }) : await fetch(path);
    } catch (error) {
      throw new Error(`the server did not answer (${error.message}); is pressedplay serve running?`);
    }
    if (response.status !== 503 || attempt === BUSY_RETRIES) break;
    const seconds = Number(response.headers.get("Retry-After"));
    if (!(seconds > 0)) break; // a 503 without Retry-After (Spotify not configured) is final
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
    throw new Error(`${detail} (${response.status})`);
  }
  return body;
}

function imageForm() {
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  return form;
}

function trackForm() {
  const form = imageForm();
  for (const track of state.playlist.tracks) form.append("track", track.id);
  return form;
}

// --- the radar chart: each axis over its feature's range, as plots.radar draws it -------
const RADIUS = 100;

function scaled(feature, value) {
  return Math.min(1, Math.max(0, (value - feature.low) / (feature.high - feature.low)));
}

function point(index, count, fraction) {
  const angle = (2 * Math.PI * index) / count; // the first feature at the top, clockwise
  return [RADIUS * fraction * Math.sin(angle), -RADIUS * fraction * Math.cos(angle)];
}

function formatValue(feature, value) {
  return feature.unit ? `${value.toFixed(1)} ${feature.unit}` : value.toFixed(2);
}

function drawRadar(values) {
  const chart = $("#radar");
  const features = state.config.features;
  const count = features.length;
  chart.replaceChildren();
  for (const ring of [0.25, 0.5, 0.75, 1]) {
    const corners = features.map((_, i) => point(i, count, ring).join(","));
    chart.append(svg("polygon", { class: "ring", points: corners.join(" ") }));
  }
  features.forEach((feature, i) => {
    const [x, y] = point(i, count, 1);
    chart.append(svg("line", { class: "axis", x1: 0, y1: 0, x2: x, y2: y }));
    const [lx, ly] = point(i, count, 1.16);
    const anchor = Math.abs(lx) < 1 ? "middle" : lx > 0 ? "start" : "end";
    const label = svg("text", { class: "label", x: lx, y: ly, "text-anchor": anchor });
    label.append(svg("tspan", { x: lx, dy: "-0.2em" }, feature.name));
    if (values) {
      const shown = formatValue(feature, values[feature.name]);
      label.append(svg("tspan", { class: "value", x: lx, dy: "1.15em" }, shown));
    }
    chart.append(label);
  });
  if (!values) return;
  const fractions = features.map((feature) => scaled(feature, values[feature.name]));
  const corners = fractions.map((f, i) => point(i, count, f).join(","));
  chart.append(svg("polygon", { class: "shape", points: corners.join(" ") }));
  features.forEach((feature, i) => {
    const [x, y] = point(i, count, fractions[i]);
    const dot = svg("circle", { class: "dot", cx: x, cy: y, r: 3.5 });
    dot.dataset.feature = feature.name;
    dot.dataset.scaled = fractions[i].toFixed(6);
    dot.append(svg("title", {}, `${feature.name}: ${formatValue(feature, values[feature.name])}`));
    chart.append(dot);
  });
}

// --- the playlist --------------------------------------------------------------------
function drawPlaylist(playlist) {
  const list = $("#tracks");
  list.replaceChildren();
  for (const track of playlist.tracks) {
    const row = element("li", { class: "track" });
    row.dataset.id = track.id;
    const text = element("div", { class: "what" });
    text.append(element("span", { class: "name" }, track.name));
    text.append(element("span", { class: "artist" }, track.artist));
    const meta = element("div", { class: "meta" });
    if (track.genres && track.genres.length) meta.append(element("span", { class: "genres" }, track.genres.join(", ")));
    meta.append(element("span", { class: "distance", title: "distance to the picture" }, track.distance.toFixed(2)));
    const link = element("a", { class: "open", href: track.url, target: "_blank", rel: "noopener" }, "Spotify");
    link.setAttribute("aria-label", `${track.name} on Spotify`);
    row.append(text, meta, link);
    list.append(row);
  }
  $("#empty").hidden = playlist.tracks.length > 0;
  $("#empty").textContent = playlist.trecs_run ? "No track to continue with." : "No track of these genres.";
}

function drawGenres() {
  const box = $("#genres");
  box.replaceChildren();
  for (const genre of state.config.genres) {
    const chip = element("button", { type: "button", class: "chip", "aria-pressed": "false" }, genre);
    chip.dataset.genre = genre;
    chip.addEventListener("click", () => {
      if (state.genres.has(genre)) state.genres.delete(genre);
      else state.genres.add(genre);
      chip.setAttribute("aria-pressed", String(state.genres.has(genre)));
      if (state.file) refresh();
    });
    box.append(chip);
  }
}

// Where a playlist's tracks come from: the catalog, or with `serve --continue` the trecs
// run that continued the picture's nearest tracks (its seeds).
function source(playlist) {
  if (!playlist.trecs_run) return `from ${playlist.catalog.split("/").pop()}`;
  const run = playlist.trecs_run.split("/").pop();
  return `continued by trecs run ${run} from ${playlist.seeds.length} seed tracks`;
}

function setBusy(busy) {
  document.body.classList.toggle("busy", busy);
  const ready = !busy && state.playlist !== null && state.playlist.tracks.length > 0;
  $("#like").disabled = !ready || state.judged;
  $("#dislike").disabled = !ready || state.judged;
  $("#save").disabled = !ready;
}

// False when the server refused state.file; only the latest request's answer is shown.
async function refresh() {
  if (!state.file) return false;
  const ticket = ++state.asked;
  const form = imageForm();
  for (const genre of state.genres) form.append("genre", genre);
  form.append("n", $("#n").value || "20");
  showError("");
  setBusy(true);
  try {
    const playlist = await api("/api/playlist", form);
    if (ticket !== state.asked) return true;
    state.playlist = playlist;
    state.judged = false;
    drawRadar(playlist.features);
    drawPlaylist(playlist);
    notice(`${playlist.tracks.length} tracks ${source(playlist)}.`);
    return true;
  } catch (error) {
    if (ticket !== state.asked) return true;
    showError(error.message);
    return false;
  } finally {
    if (ticket === state.asked) setBusy(false);
  }
}

function showPicture(file) {
  const preview = $("#preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.hidden = !file;
  $("#hint").hidden = Boolean(file);
  $("#drop").classList.toggle("has-image", Boolean(file));
  if (file) preview.src = URL.createObjectURL(file);
  else preview.removeAttribute("src");
}

async function choose(file) {
  if (!file) return;
  const limit = state.config.max_upload;
  if (file.size > limit) {
    showError(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is ${limit / 2 ** 20} MB`);
    return;
  }
  const previous = state.file;
  state.file = file;
  showPicture(file);
  if (!(await refresh())) {
    // A refused picture leaves the page as it was: the last picture with its playlist.
    state.file = previous;
    showPicture(previous);
  }
}

// --- verdicts and Spotify ------------------------------------------------------------
async function judge(verdict) {
  const form = trackForm();
  form.append("verdict", verdict);
  showError("");
  setBusy(true);
  try {
    const stored = await api("/api/feedback", form);
    state.judged = true;
    notice(`Stored your ${stored.verdict} (#${stored.id}) for ${stored.tracks} tracks; \`pressedplay train --feedback\` learns from it.`);
  } catch (error) {
    showError(error.message);
  } finally {
    setBusy(false);
  }
}

async function save() {
  showError("");
  setBusy(true);
  try {
    const saved = await api("/api/spotify/playlist", trackForm());
    notice(`Saved ${saved.tracks} tracks to Spotify${saved.cover ? " with the picture as cover" : ""}:`, saved.url);
    for (const warning of saved.warnings) showError(warning);
  } catch (error) {
    showError(error.message);
  } finally {
    setBusy(false);
  }
}

function drawStatus() {
  const config = state.config;
  const tracks = config.trecs_run
    ? `trecs run: ${config.trecs_run.split("/").pop()}`
    : `catalog: ${config.catalog.split("/").pop()}`;
  let spotify = "Spotify not configured";
  if (config.spotify.configured) spotify = config.spotify.logged_in ? "Spotify: logged in" : "Spotify: not logged in";
  $("#status").textContent = `model: ${config.model} · ${tracks} · ${spotify}`;
  $("#login").hidden = !config.spotify.configured || config.spotify.logged_in;
  $("#save").hidden = !config.spotify.configured || !config.spotify.logged_in;
}

let polling = null;

async function checkLogin() {
  try {
    state.config = await api("/api/config");
    drawStatus();
    if (state.config.spotify.logged_in && polling !== null) {
      clearInterval(polling);
      polling = null;
    }
  } catch (error) {
    showError(error.message);
  }
}

// --- wiring --------------------------------------------------------------------------
async function start() {
  try {
    state.config = await api("/api/config");
  } catch (error) {
    $("#status").textContent = "";
    showError(error.message);
    return;
  }
  $("#n").max = String(state.config.max_tracks);
  drawStatus();
  drawGenres();
  drawRadar(null);

  const drop = $("#drop");
  $("#file").addEventListener("change", (event) => choose(event.target.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    choose(event.dataTransfer.files[0]);
  });
  $("#n").addEventListener("change", refresh);
  $("#like").addEventListener("click", () => judge("like"));
  $("#dislike").addEventListener("click", () => judge("dislike"));
  $("#save").addEventListener("click", save);
  $("#login").addEventListener("click", () => {
    // The login happens in its own tab; this page keeps its picture and playlist and
    // notices the login when it comes back or within a few seconds.
    if (polling === null) polling = setInterval(checkLogin, 2000);
  });
  window.addEventListener("focus", checkLogin);
}

document.addEventListener("DOMContentLoaded", start);
