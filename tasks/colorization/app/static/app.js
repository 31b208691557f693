// adaprune colorization app: the page over the server's API (server.py). No model or colour
// maths here: the server colorizes; the page places hints, shows images and reads pixels back.
// Per click the server answers a preview at the size the page shows (state.display), drawn
// into the result canvas; the full-resolution PNG is made only for Download.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  photo: null,          // {id, width, height} from POST /api/images
  hints: [],            // [{x, y, size, rgb: [r, g, b]}]: the --hints format, photo pixels
  selected: -1,
  undo: [],
  redo: [],
  recent: [],           // "#rrggbb", most recent first
  models: [],
  modelSize: [224, 224],
  display: null,        // [w, h] device pixels the photo is shown at: the size of the previews asked
  grayDisplay: null,    // the display size the grey photo was fetched at
  inFlight: false,
  again: false,
  generation: 0,        // results shown so far (tests and the status line read it)
  editedAt: null,       // performance.now() of the oldest edit not yet sent
  timings: [],          // per result drawn: {ms: edit -> drawn, server_ms, round_trip_ms, bytes, width, height, hints}
  downloading: false,
  suggestion: null,     // "#rrggbb": the model's colour at the selected hint when it was placed
  drag: null,
  colourEdit: false,    // a colour-picker session already pushed its undo step
};

// -- helpers -------------------------------------------------------------------------------

const hex = (rgb) => "#" + rgb.map((c) => Math.round(c).toString(16).padStart(2, "0")).join("");
const rgbOf = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
const copyHints = (hints) => hints.map((h) => JSON.parse(JSON.stringify(h)));

function say(text, isError = false) {
  const bar = $("status");
  bar.textContent = text;
  bar.classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const data = await response.json();
    return data.error || response.statusText;
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) throw new Error(await errorText(response));
  return response;
}

// -- models and samples --------------------------------------------------------------------

async function loadModels() {
  const data = await (await api("/api/models")).json();
  state.models = data.models;
  const select = $("model");
  select.innerHTML = "";
  for (const m of data.models) {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = `${m.name}${m.adaptive ? " (adaptive)" : " (dense)"}`;
    option.title = m.description || m.architecture;
    select.appendChild(option);
  }
  select.value = data.default;
  const [low, high] = data.hint_size_range;  // the sizes `adacolor colorize --hints` accepts
  $("size").min = low;
  $("size").max = high;
  setModelSize();
}

function setModelSize() {
  const m = state.models.find((x) => x.name === $("model").value);
  if (m) state.modelSize = m.image_size;
}

async function loadSamples() {
  try {
    const data = await (await api("/api/samples")).json();
    for (const name of data.samples) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      $("sample").appendChild(option);
    }
  } catch (error) {
    $("sample").disabled = true;
    $("sample").title = error.message;
  }
}

// -- opening a photo -------------------------------------------------------------------------

async function openUpload(file) {
  const form = new FormData();
  form.append("image", file, file.name || "photo");
  say(`uploading ${file.name || "photo"}…`);
  try {
    await showPhoto(await (await api("/api/images", { method: "POST", body: form })).json(),
                    (file.name || "photo").replace(/\.[^.]*$/, ""));
  } catch (error) {
    say(`could not open ${file.name || "the photo"}: ${error.message}`, true);
  }
}

async function openSample(name) {
  try {
    await showPhoto(await (await api(`/api/samples/${encodeURIComponent(name)}`, { method: "POST" })).json(), name);
  } catch (error) {
    say(`could not open the sample: ${error.message}`, true);
  }
}

async function showPhoto(photo, name) {
  state.photo = photo;
  state.name = name;
  state.hints = [];
  state.undo = [];
  state.redo = [];
  state.selected = -1;
  state.suggestion = null;
  // nothing of the previous photo stays on screen
  const canvas = $("result");
  canvas.width = 0;
  canvas.height = 0;
  $("map").hidden = true;
  $("stats").textContent = "";
  $("download").disabled = true;
  $("empty").hidden = true;
  $("input-panel").hidden = false;
  $("result-panel").hidden = false;
  layout();
  await loadGray();
  renderHints();
  $("download").disabled = false;
  say(`${name}: ${photo.width}×${photo.height} px. Click on the grey photo to add a hint.`);
  await refresh();
}

// the grey photo at the size it is shown (the server keeps the full-resolution pixels)
async function loadGray() {
  const display = state.display;
  const gray = await (await api(`/api/images/${state.photo.id}/gray?display=${display.join(",")}`)).blob();
  await setImage($("gray"), URL.createObjectURL(gray));
  state.grayDisplay = display;
}

// fit the photo into its panel and the window, the same size on both sides (hint markers and
// the compute map are laid out in percent of it, so they follow); the previews asked are that
// size in device pixels (the server makes them no larger than the photo)
function layout() {
  if (!state.photo) return;
  const panel = $("input-panel");
  const top = $("input-frame").getBoundingClientRect().top + window.scrollY;
  const room = Math.max(200, window.innerHeight - top - $("status").offsetHeight - 16);
  const scale = Math.min(panel.clientWidth / state.photo.width, room / state.photo.height);
  const width = Math.max(1, Math.floor(state.photo.width * scale));
  const height = Math.max(1, Math.floor(state.photo.height * scale));
  for (const element of [$("gray"), $("result")]) {
    element.style.width = `${width}px`;
    element.style.height = `${height}px`;
  }
  const ratio = window.devicePixelRatio || 1;
  state.display = [Math.max(1, Math.round(width * ratio)), Math.max(1, Math.round(height * ratio))];
}

// after a resize, the grey photo and the result again at the new size (once the window settles)
let relayout = null;
function resized() {
  if (!state.photo) return;
  layout();
  clearTimeout(relayout);
  relayout = setTimeout(async () => {
    if (!state.photo || String(state.display) === String(state.grayDisplay)) return;
    try {
      await loadGray();
      await refresh();
    } catch (error) {
      say(`could not redraw at the new size: ${error.message}`, true);
    }
  }, 250);
}

function setImage(img, url) {
  return new Promise((resolve, reject) => {
    const old = img.dataset.url;
    img.onload = () => { if (old) URL.revokeObjectURL(old); resolve(); };
    img.onerror = () => reject(new Error("the image could not be shown"));
    img.dataset.url = url;
    img.src = url;
  });
}

// -- colorizing --------------------------------------------------------------------------------

async function refresh() {
  if (!state.photo) return;
  if (state.editedAt === null) state.editedAt = performance.now();
  if (state.inFlight) { state.again = true; return; }  // coalesce: only the newest edit is sent next
  state.inFlight = true;
  $("busy").hidden = false;
  try {
    do {
      state.again = false;
      const since = state.editedAt ?? performance.now();
      state.editedAt = null;
      const started = performance.now();
      const count = state.hints.length;
      const body = JSON.stringify({ hints: state.hints, model: $("model").value, display: state.display, format: "jpeg" });
      const response = await fetch(`/api/images/${state.photo.id}/colorize`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body });
      if (!response.ok) {
        const message = await errorText(response);
        if (response.status === 404) state.photo = null;
        say(message, true);
        break;
      }
      const blob = await response.blob();
      const bitmap = await createImageBitmap(blob);
      const [width, height] = [bitmap.width, bitmap.height];
      draw(bitmap);
      const drawn = performance.now();
      state.generation += 1;
      $("result").dataset.generation = String(state.generation);
      const latency = parseFloat(response.headers.get("X-Adaprune-Latency-Ms"));
      const gflops = parseFloat(response.headers.get("X-Adaprune-GFLOPs"));
      const roundTrip = drawn - started;
      state.timings.push({ ms: drawn - since, server_ms: latency, round_trip_ms: roundTrip, bytes: blob.size,
                           width, height, hints: count });
      if (state.timings.length > 1000) state.timings.shift();
      $("stats").innerHTML = `<b>${latency.toFixed(0)} ms</b> server · ${roundTrip.toFixed(0)} ms round trip · `
        + `<b>${gflops.toFixed(3)}</b> GFLOPs · ${response.headers.get("X-Adaprune-Model")}`;
      if ($("show-map").checked) await refreshMap();
      say(`${state.hints.length} hint${state.hints.length === 1 ? "" : "s"} · result updated`);
    } while (state.again);
  } catch (error) {
    say(`colorizing failed: ${error.message}`, true);
  } finally {
    state.inFlight = false;
    $("busy").hidden = true;
  }
}

// the result canvas takes the preview's own size; CSS shows it at the photo's displayed size
function draw(bitmap) {
  const canvas = $("result");
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
}

async function refreshMap() {
  if (!state.photo) return;
  const id = state.photo.id;
  const [png, info] = await Promise.all([
    api(`/api/images/${id}/compute-map?scale=relative&display=${state.display.join(",")}`).then((r) => r.blob()),
    api(`/api/images/${id}/compute-map.json`).then((r) => r.json()),
  ]);
  await setImage($("map"), URL.createObjectURL(png));
  $("map").hidden = !$("show-map").checked;
  const ran = info.blocks.reduce((n, b) => n + b.attention + b.ffn, 0);
  const [low, high] = info.full_width_range;  // the overlay spans the map's own range
  $("legend-low").textContent = `${(100 * low).toFixed(0)}%`;
  $("legend-high").textContent = `${(100 * high).toFixed(0)}%`;
  $("map-summary").textContent = info.adaptive
    ? `${(100 * info.full_width_mean).toFixed(0)}% of patch × sub-layer work at full width; `
      + `${ran} of ${2 * info.blocks.length} sub-layers ran`
    : "dense model: every patch at full width in every sub-layer";
  const blocks = $("blocks");
  blocks.innerHTML = "";
  info.blocks.forEach((b, i) => {
    const column = document.createElement("div");
    column.className = "block";
    column.title = `block ${i + 1}: attention ${b.attention ? "ran" : "skipped"}, FFN ${b.ffn ? "ran" : "skipped"}`;
    column.innerHTML = `<i class="${b.attention ? "on" : "off"}"></i><i class="${b.ffn ? "on" : "off"}"></i><span>${i + 1}</span>`;
    blocks.appendChild(column);
  });
  $("map-info").hidden = false;
}

// -- reading the model's colour back from the result -----------------------------------------

function predictedAt(x, y) {
  const canvas = $("result");
  if (!state.generation || !canvas.width || !canvas.height) return null;
  const column = Math.min(canvas.width - 1, Math.floor((x * canvas.width) / state.photo.width));
  const row = Math.min(canvas.height - 1, Math.floor((y * canvas.height) / state.photo.height));
  const [r, g, b] = canvas.getContext("2d").getImageData(column, row, 1, 1).data;
  return hex([r, g, b]);
}

// -- the full-resolution PNG, made on demand -------------------------------------------------

async function download() {
  if (!state.photo || state.downloading) return;
  const { id, width, height } = state.photo;
  state.downloading = true;
  $("download").disabled = true;
  say(`rendering the ${width}×${height} px PNG…`);
  try {
    const started = performance.now();
    const body = JSON.stringify({ hints: state.hints, model: $("model").value });
    const response = await api(`/api/images/${id}/download`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `${state.name || "photo"}-colorized.png`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    say(`saved ${link.download}: ${width}×${height} px, ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    say(`download failed: ${error.message}`, true);
  } finally {
    state.downloading = false;
    $("download").disabled = !state.photo;
  }
}

// -- hints -----------------------------------------------------------------------------------

function edit(change) {
  state.undo.push(copyHints(state.hints));
  state.redo = [];
  change();
  renderHints();
  refresh();
}

function photoPoint(event) {
  const rect = $("gray").getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * state.photo.width;
  const y = ((event.clientY - rect.top) / rect.height) * state.photo.height;
  return [Math.min(Math.max(x, 0), state.photo.width - 0.01), Math.min(Math.max(y, 0), state.photo.height - 0.01)];
}

function select(index) {
  state.selected = index;
  state.colourEdit = false;
  const hint = state.hints[index];
  if (hint) {
    if (hint.rgb) $("color").value = hex(hint.rgb);
    $("size").value = hint.size || 2;
    showSize();
  }
  renderHints();
}

function addHint(event) {
  if (!state.photo || state.drag) return;
  if (state.editedAt === null) state.editedAt = event.timeStamp;  // the click, on performance.now()'s clock
  const [x, y] = photoPoint(event);
  state.suggestion = predictedAt(x, y);
  const rgb = rgbOf($("color").value);
  edit(() => {
    state.hints.push({ x: round(x), y: round(y), size: Number($("size").value), rgb });
    state.selected = state.hints.length - 1;
  });
  remember($("color").value);
  select(state.selected);
}

const round = (v) => Math.round(v * 10) / 10;

function renderHints() {
  const layer = $("hints-layer");
  layer.innerHTML = "";
  const [rows, cols] = state.modelSize;
  state.hints.forEach((hint, i) => {
    const marker = document.createElement("div");
    marker.className = "marker" + (i === state.selected ? " selected" : "");
    marker.style.left = `${(100 * hint.x) / state.photo.width}%`;
    marker.style.top = `${(100 * hint.y) / state.photo.height}%`;
    marker.style.width = `${(100 * (hint.size || 2)) / cols}%`;
    marker.style.height = `${(100 * (hint.size || 2)) / rows}%`;
    marker.style.background = hint.rgb ? hex(hint.rgb) : "repeating-conic-gradient(#999 0 25%, #eee 0 50%) 0 0/6px 6px";
    marker.title = `hint ${i + 1}: (${hint.x}, ${hint.y}), ${hint.size || 2}×${hint.size || 2}`
      + (hint.rgb ? `, rgb ${hint.rgb.join(", ")}` : ", the photo's own colour");
    marker.dataset.index = String(i);
    marker.addEventListener("pointerdown", startDrag);
    layer.appendChild(marker);
  });
  const count = state.hints.length;
  $("hint-count").textContent = `${count} hint${count === 1 ? "" : "s"}`;
  $("delete").disabled = state.selected < 0;
  $("clear").disabled = count === 0;
  $("undo").disabled = state.undo.length === 0;
  $("redo").disabled = state.redo.length === 0;
  $("save-hints").disabled = !state.photo;
  const suggested = $("suggested");
  suggested.disabled = !state.suggestion;
  suggested.style.background = state.suggestion || "";
  suggested.title = state.suggestion ? `use ${state.suggestion}, the model's colour here before this hint` : "";
}

function startDrag(event) {
  event.stopPropagation();
  event.preventDefault();
  const index = Number(event.currentTarget.dataset.index);
  if (index !== state.selected) state.suggestion = null;  // it belongs to the hint placed last
  select(index);
  state.drag = { index, moved: false, before: copyHints(state.hints), pointer: event.pointerId };
  $("hints-layer").setPointerCapture(event.pointerId);
}

function moveDrag(event) {
  const drag = state.drag;
  if (!drag) return;
  const [x, y] = photoPoint(event);
  const hint = state.hints[drag.index];
  if (!drag.moved) {
    state.undo.push(drag.before);
    state.redo = [];
    drag.moved = true;
  }
  hint.x = round(x);
  hint.y = round(y);
  renderHints();
  refresh();  // coalesced: the result follows the drag as fast as the server answers
}

function endDrag() {
  const drag = state.drag;
  if (!drag) return;
  if (drag.moved) {
    state.suggestion = null;  // it was the colour at the old place
    renderHints();
    refresh();
  }
  setTimeout(() => { state.drag = null; }, 0);  // the click that ends a drag adds no hint
}

function deleteSelected() {
  if (state.selected < 0) return;
  edit(() => {
    state.hints.splice(state.selected, 1);
    state.selected = -1;
    state.suggestion = null;
  });
}

// moves the current hints onto one history stack and takes the top of the other
function travel(from, to) {
  if (!from.length) return;
  to.push(copyHints(state.hints));
  state.hints = from.pop();
  state.selected = Math.min(state.selected, state.hints.length - 1);
  renderHints();
  refresh();
}

function undo() { travel(state.undo, state.redo); }

function redo() { travel(state.redo, state.undo); }

function setColour(value, pushUndo) {
  const hint = state.hints[state.selected];
  $("color").value = value;
  if (!hint) return;
  if (pushUndo) {
    edit(() => { hint.rgb = rgbOf(value); });
  } else {
    hint.rgb = rgbOf(value);
    renderHints();
    refresh();
  }
}

function remember(colour) {
  state.recent = [colour, ...state.recent.filter((c) => c !== colour)].slice(0, 10);
  const box = $("recent");
  box.innerHTML = "";
  for (const c of state.recent) {
    const swatch = document.createElement("button");
    swatch.className = "swatch";
    swatch.style.background = c;
    swatch.title = c;
    swatch.addEventListener("click", () => setColour(c, true));
    box.appendChild(swatch);
  }
}

function showSize() {
  $("size-value").textContent = $("size").value;
  $("size-value2").textContent = $("size").value;
}

// -- saving and loading hints ------------------------------------------------------------------

function saveHints() {
  const blob = new Blob([JSON.stringify(state.hints, null, 1) + "\n"], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${state.name || "photo"}-hints.json`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function loadHints(file) {
  try {
    let data = JSON.parse(await file.text());
    if (data && !Array.isArray(data)) data = data.hints;
    if (!Array.isArray(data)) throw new Error('expected a list of hints or {"hints": [...]}');
    if (!state.photo) throw new Error("open a photo first");
    edit(() => { state.hints = copyHints(data); state.selected = -1; state.suggestion = null; });
    say(`loaded ${data.length} hints from ${file.name}`);
  } catch (error) {
    say(`could not load ${file.name}: ${error.message}`, true);
  }
}

// -- wiring ------------------------------------------------------------------------------------

function wire() {
  $("file").addEventListener("change", (e) => { if (e.target.files[0]) openUpload(e.target.files[0]); e.target.value = ""; });
  $("sample").addEventListener("change", (e) => { if (e.target.value) openSample(e.target.value); e.target.value = ""; });
  $("model").addEventListener("change", () => { setModelSize(); renderHints(); refresh(); });
  $("input-frame").addEventListener("click", addHint);
  $("hints-layer").addEventListener("pointermove", moveDrag);
  $("hints-layer").addEventListener("pointerup", endDrag);
  $("hints-layer").addEventListener("pointercancel", endDrag);
  $("color").addEventListener("input", (e) => { setColour(e.target.value, !state.colourEdit); state.colourEdit = true; });
  $("color").addEventListener("change", (e) => { remember(e.target.value); state.colourEdit = false; });
  $("suggested").addEventListener("click", () => { if (state.suggestion) { setColour(state.suggestion, true); remember(state.suggestion); } });
  $("size").addEventListener("input", showSize);
  $("size").addEventListener("change", () => {
    const hint = state.hints[state.selected];
    if (hint) edit(() => { hint.size = Number($("size").value); });
  });
  $("delete").addEventListener("click", deleteSelected);
  $("clear").addEventListener("click", () => edit(() => { state.hints = []; state.selected = -1; }));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("show-map").addEventListener("change", async (e) => {
    if (e.target.checked) {
      try { await refreshMap(); } catch (error) { say(`compute map: ${error.message}`, true); }
    } else {
      $("map").hidden = true;
      $("map-info").hidden = true;
    }
  });
  $("save-hints").addEventListener("click", saveHints);
  $("hints-file").addEventListener("change", (e) => { if (e.target.files[0]) loadHints(e.target.files[0]); e.target.value = ""; });
  $("download").addEventListener("click", download);

  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input[type=text], input[type=number], textarea")) return;  // typing, not editing hints
    const mod = e.ctrlKey || e.metaKey;
    if (mod && e.key.toLowerCase() === "z") { e.preventDefault(); (e.shiftKey ? redo : undo)(); }
    else if (mod && e.key.toLowerCase() === "y") { e.preventDefault(); redo(); }
    else if (e.key === "Delete" || e.key === "Backspace") { e.preventDefault(); deleteSelected(); }
    else if (e.key === "Escape") select(-1);
  });

  // drop a photo anywhere on the page
  const stage = document.body;
  stage.addEventListener("dragover", (e) => { e.preventDefault(); stage.classList.add("dropping"); });
  stage.addEventListener("dragleave", (e) => { if (e.target === stage || !e.relatedTarget) stage.classList.remove("dropping"); });
  stage.addEventListener("drop", (e) => {
    e.preventDefault();
    stage.classList.remove("dropping");
    const file = [...(e.dataTransfer?.files || [])].find((f) => f.type.startsWith("image/")) || e.dataTransfer?.files[0];
    if (file) openUpload(file);
  });
}

wire();
showSize();
window.addEventListener("resize", resized);
Promise.all([loadModels(), loadSamples()])
  .then(() => say("Open a photo, drop one on the page, or pick a sample."))
  .catch((error) => say(`the server did not answer: ${error.message}`, true));
