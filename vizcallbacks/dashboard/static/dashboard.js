// vizcallbacks dashboard: the network view (one probe down every logged layer at one step) and
// the layer view (one layer across every logged step). One ES module, no dependencies, no build.
// In TensorBoard, render() runs with no argument and reads the plugin's routes; in the one-file
// report, render(data) gets every run and every image (data: URIs) inlined, and never fetches.

const CURVE_W = 150;
const CURVE_H = 40;
const POLL_MS = 5000;
const MIN_SIDE = 96;  // pixels: smaller images are enlarged
// One colour per run shown (curves and run labels), as the compare command's picture draws them.
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const color = (i) => COLORS[i % COLORS.length];

function pluginSource() {
  const get = (route, query) =>
    fetch(`./${route}?${new URLSearchParams(query)}`).then((r) => {
      if (!r.ok) throw new Error(`${route}: HTTP ${r.status}`);
      return r.json();
    });
  return {
    live: true,
    runs: () => get("runs", {}),
    run: (name) => get("run", { run: name }),
    url: (ref) => `./image?${new URLSearchParams({ key: ref })}`,
  };
}

function reportSource(data) {
  const byName = new Map(data.runs.map((r) => [r.name, r]));
  return {
    live: false,
    shown: data.shown ?? [],
    runs: async () => data.runs.map((r) => r.name),
    run: async (name) => byName.get(name),
    url: (ref) => data.images[ref],
  };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child != null) node.append(child);
  }
  return node;
}

function svgEl(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

// Images are fetched (or decoded) only when they come near the viewport.
const lazy = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const img = entry.target;
      img.dataset.seen = "1";
      lazy.unobserve(img);
      if (img.dataset.ref) img.src = state.source.url(img.dataset.ref);
    }
  },
  { rootMargin: "300px" },
);

function valueAt(series, step) {
  const i = series.steps.indexOf(step);
  return i < 0 ? undefined : series.values[i];
}

// An <img> showing `series` (one image tag) at `step`, or a placeholder when not logged then.
function imageFigure(series, step, caption, runIndex) {
  const img = el("img", { alt: `${series.tag} step ${step}`, "data-tag": series.tag });
  const missing = el("div", { class: "vc-missing" });
  const figure = el(
    "figure",
    { class: "vc-image", "data-kind": series.kind, "data-run": String(runIndex) },
    img,
    missing,
    el("figcaption", {}, caption),
  );
  img.addEventListener("click", () => figure.classList.toggle("vc-zoom"));
  img.addEventListener("load", () => {  // small grids drawn at a whole multiple, pixels sharp
    const times = Math.max(1, Math.floor(MIN_SIDE / Math.max(img.naturalWidth, img.naturalHeight)));
    img.style.width = times > 1 ? `${img.naturalWidth * times}px` : "";
  });
  figure.update = (at) => setImage(img, missing, series, at);
  figure.update(step);
  lazy.observe(img);
  return figure;
}

function setImage(img, missing, series, step) {
  // The probe is logged once: it stays shown at every later step; a picture of the whole run
  // (drawn at train end) is shown at every step.
  const earlier = series.steps.filter((s) => s <= step).length - 1;
  const ref = series.whole_run ? series.values.at(-1)
    : series.kind === "probe" ? series.values[earlier] : valueAt(series, step);
  img.dataset.step = String(step);
  img.hidden = ref === undefined;
  missing.textContent = ref === undefined ? `not logged at step ${step}` : "";
  if (ref === undefined) {
    img.removeAttribute("data-ref");
    img.removeAttribute("src");
  } else if (img.dataset.ref !== ref) {
    img.dataset.ref = ref;
    if (img.dataset.seen) img.src = state.source.url(ref);
  }
}

// A small curve of one statistic over every step of the run (one line per run shown, all on
// the same step axis), the current step marked. A batch-stepped statistic (`batch`) gets its own
// axis, the batches, and shows its last value: the slider's steps are epochs.
function curve(kind, seriesList, step, batch = false) {
  const all = batch
    ? [...new Set(seriesList.flatMap((s) => (s ? s.steps : [])))].sort((a, b) => a - b)
    : allSteps();
  const values = seriesList.flatMap((s) => (s ? s.values : [])).filter(Number.isFinite);
  const [x0, x1] = [all[0], all[all.length - 1]];
  const [y0, y1] = [Math.min(...values), Math.max(...values)];
  const x = (s) => (x1 > x0 ? ((s - x0) / (x1 - x0)) * (CURVE_W - 4) + 2 : CURVE_W / 2);
  const y = (v) => (y1 > y0 ? CURVE_H - 3 - ((v - y0) / (y1 - y0)) * (CURVE_H - 6) : CURVE_H / 2);
  const svg = svgEl("svg", { class: "vc-curve", width: CURVE_W, height: CURVE_H, "data-kind": kind });
  seriesList.forEach((s, i) => {
    if (!s) return;
    const points = s.steps
      .map((st, j) => [st, s.values[j]])
      .filter(([, v]) => Number.isFinite(v))
      .map(([st, v]) => `${x(st).toFixed(1)},${y(v).toFixed(1)}`);
    svg.append(svgEl("polyline", { points: points.join(" "), stroke: color(i), fill: "none" }));
  });
  const mark = svgEl("line", { class: "vc-mark", y1: 0, y2: CURVE_H });
  if (!batch) svg.append(mark);
  const label = el("div", { class: "vc-curve-label" });
  const attrs = { class: batch ? "vc-stat vc-batch" : "vc-stat", "data-kind": kind };
  const box = el("div", attrs, label, svg);
  box.update = (at) => {
    mark.setAttribute("x1", x(at));
    mark.setAttribute("x2", x(at));
    const shown = seriesList.map((s) => (!s ? undefined : batch ? s.values.at(-1) : valueAt(s, at)));
    const text = shown.map((v) => (v === undefined ? "–" : Number(v).toPrecision(3))).join(" | ");
    label.textContent = batch ? `${kind} (batch ${all.at(-1)}): ${text}` : `${kind}: ${text}`;
    label.title = label.textContent;  // N runs' values do not fit: the whole line on hover
  };
  box.update(step);
  return box;
}

const state = {
  source: null,
  names: [],
  view: "network",
  run: null,
  compared: [],  // the runs shown beside `run`, in the order listed
  probe: "",
  layer: null,
  step: null,  // none chosen yet: open at the newest step
  labels: new Map(),  // run → what to call it (the root run "." is named after its directory)
  indexes: [],
  updaters: [],
};

function forProbe(entries) {
  return entries.filter((e) => e.probe === "" || e.probe === state.probe);
}

// Dead channels of a conv-like layer are named (the text logged beside them) and flagged; Dense
// and Flatten units are only counted: with few probes about half of a ReLU layer's are zero by
// chance, so the count is said plainly, never as an alarm.
function deadNote(layer, step) {
  const text = valueAt(layer.dead, step);
  if (text) return el("span", { class: "vc-flagged", textContent: text });
  const count = layer.stats.find((s) => s.kind === "dead_channels");
  const n = count ? valueAt(count, step) : undefined;
  const units = `${n} unit${n === 1 ? " is" : "s are"} zero for every probe (counted, not flagged)`;
  return n ? el("span", { class: "vc-counted", textContent: units }) : null;
}

// The curves of `layers` (one layer, one entry per run shown) from their `field` ("stats", or
// "batch_stats" on a batch axis).
function curves(layers, field, step) {
  const of = (l) => (l ? forProbe(l[field] ?? []) : []);
  const kinds = [...new Set(layers.flatMap((l) => of(l).map((s) => s.kind)))];
  const batch = field === "batch_stats";
  return kinds.map((kind) => curve(kind, layers.map((l) => of(l).find((s) => s.kind === kind)), step, batch));
}

function layerRow(name, step) {
  const layers = state.indexes.map((ix) => ix.layers.find((l) => l.name === name));
  const stats = [...curves(layers, "stats", step), ...curves(layers, "batch_stats", step)];
  const dead = el("div", { class: "vc-dead" });
  const columns = layers.map((layer, i) => {
    const figures = layer ? forProbe(layer.images).map((s) => imageFigure(s, step, s.kind, i)) : [];
    const title = state.indexes.length > 1 ? runTitle(i) : null;
    return { node: el("div", { class: "vc-images", "data-run": String(i) }, title, ...figures), figures };
  });
  const row = el(
    "section",
    { class: "vc-layer", "data-layer": name },
    el("div", { class: "vc-side" }, el("h3", {}, name), ...stats, dead),
    el("div", { class: columnsClass() }, ...columns.map((c) => c.node)),
  );
  state.updaters.push((at) => {
    stats.forEach((s) => s.update(at));
    columns.forEach((c) => c.figures.forEach((f) => f.update(at)));
    dead.replaceChildren(...layers.map((l) => l && deadNote(l, at)).filter(Boolean));
  });
  return row;
}

// A run's name in its colour, the colour of its curves.
function runTitle(i) {
  return el("div", { class: "vc-run-label", style: `color: ${color(i)}` }, state.indexes[i].name);
}

// Two runs side by side; more (a sweep) a row each, so that one layer's pictures line up.
function columnsClass() {
  return state.indexes.length > 2 ? "vc-columns vc-rows" : "vc-columns";
}

function layerNames() {
  const names = [];
  for (const ix of state.indexes) for (const l of ix.layers) if (!names.includes(l.name)) names.push(l.name);
  return names;
}

function allSteps() {
  return [...new Set(state.indexes.flatMap((ix) => ix.steps))].sort((a, b) => a - b);
}

function networkView(main) {
  const inputs = state.indexes.map((ix, i) =>
    forProbe(ix.inputs).map((s) => imageFigure(s, state.step, state.indexes.length > 1 ? `input · ${ix.name}` : "input", i)),
  );
  const figures = inputs.flat();
  if (figures.length) {
    const side = el("div", { class: "vc-side" }, el("h3", {}, "input"));
    main.append(el("section", { class: "vc-input" }, side, el("div", { class: "vc-columns" }, ...figures)));
    state.updaters.push((at) => figures.forEach((f) => f.update(at)));
  }
  main.append(...networkRows());
  for (const name of layerNames()) main.append(layerRow(name, state.step));
}

// The pictures of the whole network (gradient flow, CKA between layers), one row above the layers.
function networkRows() {
  const columns = state.indexes.map((ix, i) =>
    forProbe(ix.network ?? []).map((s) => imageFigure(s, state.step, state.indexes.length > 1 ? `${s.tag} · ${ix.name}` : s.tag, i)),
  );
  const figures = columns.flat();
  if (!figures.length) return [];
  state.updaters.push((at) => figures.forEach((f) => f.update(at)));
  const side = el("div", { class: "vc-side" }, el("h3", {}, "whole network"));
  return [el("section", { class: "vc-network" }, side, el("div", { class: "vc-columns" }, ...figures))];
}

function layerView(main) {
  const name = state.layer;
  const steps = allSteps();
  const layers = state.indexes.map((ix) => ix.layers.find((l) => l.name === name));
  const kinds = [...new Set(layers.flatMap((l) => (l ? forProbe(l.images).map((s) => `${s.kind}\u0000${s.probe}`) : [])))];
  for (const key of kinds) {
    const [kind] = key.split("\u0000");
    layers.forEach((layer, i) => {
      const series = layer && forProbe(layer.images).find((s) => `${s.kind}\u0000${s.probe}` === key);
      if (!series) return;
      const label = state.indexes.length > 1 ? `${kind} · ${state.indexes[i].name}` : kind;
      const heading = el("h3", { style: state.indexes.length > 1 ? `color: ${color(i)}` : "" }, label);
      const figures = steps.map((st) => {
        const f = imageFigure(series, st, `step ${st}`, i);
        f.classList.add("vc-step");
        f.setAttribute("data-step", String(st));
        return f;
      });
      main.append(el("section", { class: "vc-strip", "data-kind": kind, "data-run": String(i) }, heading, el("div", { class: "vc-strip-images" }, ...figures)));
    });
  }
  const drift = (c) => (c.dataset.kind.startsWith("filter_drift") ? 0 : 1);
  const shown = curves(layers, "stats", state.step).sort((a, b) => drift(a) - drift(b));
  shown.push(...curves(layers, "batch_stats", state.step));
  main.append(el("section", { class: "vc-layer-stats" }, ...shown));
  state.updaters.push((at) => shown.forEach((c) => c.update(at)));
}

function draw() {
  const main = document.getElementById("vc-main");
  main.replaceChildren();
  state.updaters = [];
  const steps = allSteps();
  const slider = document.getElementById("vc-step");
  slider.max = String(Math.max(steps.length - 1, 0));
  if (!steps.includes(state.step)) state.step = steps.length ? steps[steps.length - 1] : 0;
  slider.value = String(steps.indexOf(state.step));
  note(steps);
  document.getElementById("vc-layer").hidden = state.view !== "layer";
  if (state.view === "network") networkView(main);
  else layerView(main);
  setStep(state.step);
  main.dataset.view = state.view;
}

function note(steps) {
  const shown = Math.max(0, ...state.indexes.flatMap((ix) => ix.layers.flatMap((l) => l.images.map((s) => s.steps.length))));
  const statSteps = Math.max(0, ...state.indexes.flatMap((ix) => ix.layers.flatMap((l) => l.stats.map((s) => s.steps.length))));
  const text = state.source.live && shown < statSteps
    ? `TensorBoard kept ${shown} of ${statSteps} image steps: start it with --samples_per_plugin images=1000 to see them all.`
    : steps.length ? "" : "Nothing logged by vizcallbacks in this run yet.";
  document.getElementById("vc-note").textContent = text;
}

function setStep(step) {
  state.step = step;
  document.getElementById("vc-step-label").textContent = `step ${step}`;
  document.getElementById("vc-main").dataset.step = String(step);
  state.updaters.forEach((update) => update(step));
}

function fillSelect(select, values, labels, chosen) {
  select.replaceChildren(...values.map((v, i) => el("option", { value: v, textContent: labels[i], selected: v === chosen })));
  select.value = chosen;
}

function shownRuns() {
  return [state.run, ...state.compared].filter(Boolean);
}

function fetchRuns() {
  return Promise.all(shownRuns().map((n) => state.source.run(n)));
}

// Show `indexes` (the run, and those compared): the probe and layer choices, then the view.
async function loadRuns(indexes) {
  state.indexes = indexes ?? (await fetchRuns());
  shownRuns().forEach((run, i) => state.labels.set(run, state.indexes[i]?.name ?? run));
  fillRun();
  fillCompare();
  const probes = [...new Set(state.indexes.flatMap((ix) => ix.probes))];
  if (!probes.includes(state.probe)) state.probe = probes[0] ?? "";
  fillSelect(document.getElementById("vc-probe"), probes, probes.map((p) => p || "(the probe)"), state.probe);
  const layers = layerNames();
  if (!layers.includes(state.layer)) state.layer = layers.find((n) => state.indexes[0].layers.find((l) => l.name === n && l.images.length)) ?? layers[0] ?? null;
  fillSelect(document.getElementById("vc-layer"), layers, layers, state.layer);
  draw();
}

function toolbar(root) {
  const select = (id, label) => el("label", {}, label, el("select", { id }));
  const tabs = ["network", "layer"].map((v) =>
    el("button", { id: `vc-tab-${v}`, type: "button", textContent: v === "network" ? "Network" : "Layer", onclick: () => { state.view = v; tabs.forEach((t) => t.classList.toggle("vc-active", t.id === `vc-tab-${v}`)); draw(); } }),
  );
  tabs[0].classList.add("vc-active");
  const stepBox = el("label", { id: "vc-step-box" }, el("input", { id: "vc-step", type: "range", min: 0, max: 0, step: 1 }), el("span", { id: "vc-step-label" }));
  root.append(
    el("div", { id: "vc-toolbar" }, ...tabs, select("vc-run", "run "), compareBox(), select("vc-probe", "probe "), el("label", {}, el("select", { id: "vc-layer" })), stepBox),
    el("div", { id: "vc-note" }),
    el("div", { id: "vc-main" }),
  );
  document.getElementById("vc-step").addEventListener("input", (e) => setStep(allSteps()[Number(e.target.value)] ?? 0));
  document.getElementById("vc-run").addEventListener("change", (e) => { state.run = e.target.value; state.compared = state.compared.filter((n) => n !== state.run); fillCompare(); loadRuns(); });
  document.getElementById("vc-compare").addEventListener("change", (e) => {
    const boxes = [...e.currentTarget.querySelectorAll("input[type=checkbox]")];
    if (e.target.value === "") boxes.forEach((b) => { b.checked = e.target.checked; });  // every run
    state.compared = boxes.filter((b) => b.value && b.checked).map((b) => b.value);
    fillCompare();
    loadRuns();
  });
  document.getElementById("vc-probe").addEventListener("change", (e) => { state.probe = e.target.value; draw(); });
  document.getElementById("vc-layer").addEventListener("change", (e) => { state.layer = e.target.value; draw(); });
}

function runLabel(run) {
  return state.labels.get(run) ?? run;
}

function fillRun() {
  fillSelect(document.getElementById("vc-run"), state.names, state.names.map(runLabel), state.run);
}

// "compare with": a checkbox per other run (any number of them), and one for every run.
function compareBox() {
  return el("details", { id: "vc-compare" }, el("summary", {}), el("div", { class: "vc-compare-list" }));
}

function fillCompare() {
  const box = document.getElementById("vc-compare");
  const others = state.names.filter((n) => n !== state.run);
  const check = (value, text, checked) => el("label", {}, el("input", { type: "checkbox", value, checked }), text);
  const every = others.length > 1 ? [check("", "every run", others.every((n) => state.compared.includes(n)))] : [];
  box.lastChild.replaceChildren(...every, ...others.map((n) => check(n, runLabel(n), state.compared.includes(n))));
  const n = state.compared.length;
  box.firstChild.textContent = `compare with: ${n ? `${n} run${n > 1 ? "s" : ""}` : "(none)"}`;
  box.hidden = !others.length;
}

function signature(indexes) {
  const lengths = (list) => (list ?? []).map((s) => s.steps.length);
  return JSON.stringify(indexes.map((ix) => [ix.steps, lengths(ix.network), ix.layers.map((l) => [lengths(l.images), lengths(l.batch_stats)])]));
}

async function poll() {
  if (document.hidden || !state.run) return;
  const fresh = await fetchRuns();
  if (signature(fresh) === signature(state.indexes)) return;
  const following = state.step === allSteps().at(-1);  // at the newest step: stay there
  const scroll = window.scrollY;
  await loadRuns(fresh);
  if (following) {
    const steps = allSteps();
    document.getElementById("vc-step").value = String(steps.length - 1);
    setStep(steps[steps.length - 1]);
  }
  window.scrollTo(0, scroll);
}

export async function render(data) {
  state.source = data ? reportSource(data) : pluginSource();
  const root = document.getElementById("vc-root") ?? document.body.appendChild(el("div", { id: "vc-root" }));
  if (!data) {
    const css = el("link", { rel: "stylesheet", href: "./dashboard.css" });
    document.head.append(css);
  }
  toolbar(root);
  state.names = await state.source.runs();
  const opened = (state.source.shown ?? []).filter((n) => state.names.includes(n));  // the report's
  state.run = opened[0] ?? state.names[0] ?? null;
  state.compared = opened.slice(1);
  fillRun();
  fillCompare();
  if (state.run) await loadRuns();
  else document.getElementById("vc-note").textContent = "No run logged by vizcallbacks in this log directory.";
  if (state.source.live) setInterval(() => poll().catch(() => {}), POLL_MS);
  document.body.dataset.vcReady = "1";
}
