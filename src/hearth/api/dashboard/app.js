/* Hearth's dashboard: plain JavaScript, no build step, charts by uPlot.
 *
 * Every number on the page comes from the control API, through the same calls the CLI
 * makes, sent with the token the user pasted. The token is kept in sessionStorage (gone
 * when the tab closes); a 401 forgets it and shows the login again. Text from the API is
 * only ever put in the page as text (textContent), never as HTML.
 */
"use strict";

const REFRESH_MS = 2000; // the function page: charts, instances, events, logs
const OVERVIEW_MS = 5000; // the overview reads a 15 minute series per function
const WINDOW_S = 900; // what the charts show: the API keeps 1 s points this long
const TOKEN = "hearth-token";
const COLORS = { blue: "#2563eb", orange: "#ea580c", red: "#dc2626", green: "#16a34a" };

// The charts on the page by name (uPlot instances; `.data` is what they draw), so that a
// test, or someone at the console, can see what the page shows.
window.hearth = { charts: {} };

const $ = (selector, root = document) => root.querySelector(selector);

/** An element with properties and children (strings become text nodes, never HTML). */
function h(tag, props = {}, ...children) {
  const element = Object.assign(document.createElement(tag), props);
  element.append(...children);
  return element;
}

// --- the API ------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A call to the control API with `token`; the JSON (or text) answer, or an ApiError with
 * the API's own message (every error it gives is {"error": "..."}). */
async function call(token, path, { method = "GET", body, text = false } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch {
      // not JSON: a proxy's page, say; the status says enough
    }
    throw new ApiError(response.status, message);
  }
  return text ? response.text() : response.json();
}

/** A call with the session's token; a 401 (revoked, or the daemon's data reset) ends the
 * session, since nothing else on the page can work without a token. */
async function api(path, options) {
  const token = sessionStorage.getItem(TOKEN);
  try {
    return await call(token, path, options);
  } catch (error) {
    // Calls run side by side: the first 401 signs out, the others find it done.
    const refused = error instanceof ApiError && error.status === 401;
    if (refused && sessionStorage.getItem(TOKEN) === token) {
      sessionStorage.removeItem(TOKEN);
      route(`Signed out: ${error.message}`);
    }
    throw error;
  }
}

const fn = (name, rest = "") => `/v1/functions/${encodeURIComponent(name)}${rest}`;

// --- the page: views, refresh loops, notices ------------------------------------------

// Bumped by every new view: a refresh loop started for an older view stops.
let view = 0;

/** Show template `id` in <main>, ending the previous view's refreshes and charts. */
function render(id, crumb = "") {
  view += 1;
  for (const chart of Object.values(window.hearth.charts)) chart.destroy();
  window.hearth.charts = {};
  const main = $("#main");
  main.replaceChildren($(`#${id}`).content.cloneNode(true));
  $("#crumb").textContent = crumb;
  $("#logout").hidden = !sessionStorage.getItem(TOKEN);
  return main;
}

/** Run `refresh` now and then every `ms` while this view lasts, one call at a time. */
function every(ms, refresh) {
  const mine = view;
  const loop = async () => {
    if (mine !== view) return;
    try {
      await refresh();
      if ($("#notice").dataset.refresh) $("#notice").hidden = true; // it works again
    } catch (error) {
      if (mine === view && !(error instanceof ApiError && error.status === 401)) {
        notify(`Could not refresh: ${error.message}`, "error", true);
      }
    }
    if (mine === view) setTimeout(loop, ms);
  };
  loop();
}

/** A message above the page; one about refreshing goes away when a refresh works. */
function notify(message, kind = "info", refresh = false) {
  const notice = $("#notice");
  notice.className = kind;
  notice.dataset.refresh = refresh ? "yes" : "";
  $("#notice-text").textContent = message;
  notice.hidden = false;
}

function route(message) {
  $("#notice").hidden = true;
  if (!sessionStorage.getItem(TOKEN)) return showLogin(message);
  const match = location.hash.match(/^#\/fn\/([a-z0-9-]+)$/);
  return match ? showFunction(match[1]) : showOverview();
}

// --- login ---------------------------------------------------------------------------

function showLogin(message) {
  const main = render("login");
  const form = $("form", main);
  const problem = $(".error", form);
  const say = (text) => {
    problem.textContent = text;
    problem.hidden = !text;
  };
  say(message || "");
  form.token.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = form.token.value.trim();
    try {
      await call(token, "/v1/functions"); // every scope may list (its) functions
    } catch (error) {
      say(error instanceof ApiError ? `Token refused: ${error.message}` : `${error.message}`);
      return;
    }
    sessionStorage.setItem(TOKEN, token);
    route();
  });
}

function logout() {
  sessionStorage.removeItem(TOKEN);
  history.replaceState(null, "", "#/"); // the next sign-in starts at the overview
  route();
}

// --- numbers -------------------------------------------------------------------------

const fixed = (value, digits = 1) => (value == null ? "–" : Number(value).toFixed(digits));
const megabytes = (bytes) => fixed(bytes / 1048576);

function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const clock24 = { hour12: false };

function when(unix) {
  const date = new Date(unix * 1000);
  const today = date.toDateString() === new Date().toDateString();
  return today ? date.toLocaleTimeString([], clock24) : date.toLocaleString([], clock24);
}

/** {"3": 90, "4": 10} as "v3 90% · v4 10%"; one version as "v3". */
function split(traffic) {
  const entries = Object.entries(traffic || {}).filter(([, share]) => share > 0);
  if (entries.length <= 1) return entries.length ? `v${entries[0][0]}` : "–";
  const total = entries.reduce((sum, [, share]) => sum + share, 0);
  return entries.map(([v, share]) => `v${v} ${Math.round((100 * share) / total)}%`).join(" · ");
}

// --- charts --------------------------------------------------------------------------

/** y from zero, so that a flat line near zero does not look like a storm. */
const fromZero = (u, min, max) => [0, max > 0 ? max * 1.1 : 1];

/** Time ticks as a 24 hour clock, with seconds when ticks are under a minute apart
 * (uPlot's own labels add dates on a second line, crowded at 15 minutes). */
function clock(u, ticks, axis, space, increment) {
  const shape = { hour: "2-digit", minute: "2-digit", ...clock24 };
  if (increment < 60) shape.second = "2-digit";
  return ticks.map((t) => new Date(t * 1000).toLocaleTimeString([], shape));
}

/** Axis values short enough for the axis: 1.5k, 30k, 2M (uPlot's own would be cut). */
function compact(u, ticks) {
  return ticks.map((v) => {
    const size = Math.abs(v);
    if (size >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
    if (size >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
    return `${+v.toFixed(2)}`;
  });
}

/** A uPlot chart in `element`: `series` are the label and color of each line after x. A
 * chart follows its element's width; a sparkline (given `width`) is bare and fixed. */
function chart(element, series, { width, height = 180 } = {}) {
  const spark = width !== undefined;
  const options = {
    width: width ?? Math.max(element.clientWidth, 100),
    height,
    series: [
      {},
      ...series.map(({ label, color }) => ({
        label,
        stroke: color,
        width: spark ? 1 : 2,
        fill: series.length === 1 ? `${color}22` : undefined,
        points: { show: false },
      })),
    ],
    // x spans the points there are: the last 15 minutes, or since the function started.
    scales: { x: { time: !spark }, y: { range: fromZero } },
  };
  if (spark) {
    Object.assign(options, {
      cursor: { show: false },
      legend: { show: false },
      axes: [{ show: false }, { show: false }],
      padding: [2, 0, 2, 0],
    });
  } else {
    options.axes = [{ values: clock, space: 80 }, { size: 50, values: compact }];
  }
  const u = new uPlot(options, [[], ...series.map(() => [])], element);
  if (!spark) {
    const observer = new ResizeObserver(() => {
      if (!element.isConnected) observer.disconnect(); // its view has gone
      else if (element.clientWidth) u.setSize({ width: element.clientWidth, height });
    });
    observer.observe(element);
  }
  return u;
}

/** The API's points as uPlot data: [times, ...one array per field]. */
const columns = (points, ...fields) => [
  points.map((p) => p.t),
  ...fields.map((field) => points.map((p) => p[field])),
];

// --- overview ------------------------------------------------------------------------

function showOverview() {
  const main = render("overview");
  const body = $("tbody", main);
  const rows = new Map(); // name -> {row, cells, chart}

  const rowFor = (name) => {
    if (rows.has(name)) return rows.get(name);
    const cells = {
      version: h("td"),
      instances: h("td", { className: "num" }),
      rps: h("td", { className: "num" }),
      p99: h("td", { className: "num" }),
      errors: h("td", { className: "num" }),
      spark: h("td", { className: "spark" }),
    };
    const link = h("a", { href: `#/fn/${name}` }, name);
    const row = h("tr", {}, h("td", {}, link), ...Object.values(cells));
    body.append(row);
    const spark = chart(cells.spark, [{ color: COLORS.blue }], { width: 140, height: 32 });
    window.hearth.charts[`spark:${name}`] = spark;
    const entry = { row, cells, spark };
    rows.set(name, entry);
    return entry;
  };

  every(OVERVIEW_MS, async () => {
    const [functions, now] = await Promise.all([api("/v1/functions"), api("/v1/metrics")]);
    const series = await Promise.all(
      functions.map((f) => api(fn(f.name, `/metrics?seconds=${WINDOW_S}`))),
    );
    $(".empty", main).hidden = functions.length > 0;
    const names = new Set(functions.map((f) => f.name));
    for (const [name, entry] of rows) {
      if (!names.has(name)) {
        entry.spark.destroy();
        delete window.hearth.charts[`spark:${name}`];
        entry.row.remove();
        rows.delete(name);
      }
    }
    functions.forEach((f, i) => {
      const { cells, spark } = rowFor(f.name);
      const mine = now.versions.filter((v) => v.function === f.name);
      const sum = (field) => mine.reduce((total, v) => total + v[field], 0);
      cells.version.textContent = split(f.traffic);
      cells.instances.textContent = f.instances.length + (f.starting ? ` (+${f.starting})` : "");
      cells.rps.textContent = mine.length ? fixed(sum("rps")) : "–";
      cells.p99.textContent = mine.length ? fixed(Math.max(...mine.map((v) => v.p99_ms))) : "–";
      cells.errors.textContent = mine.length ? fixed(sum("errors_per_s"), 2) : "–";
      spark.setData(columns(series[i].points, "rps"));
    });
  });
}

// --- a function ----------------------------------------------------------------------

function showFunction(name) {
  const main = render("function", `/ ${name}`);
  $(".name", main).textContent = name;
  const charts = {
    rps: [{ label: "req/s", color: COLORS.blue }],
    latency: [
      { label: "p50", color: COLORS.green },
      { label: "p99", color: COLORS.orange },
    ],
    errors: [{ label: "5xx/s", color: COLORS.red }],
    instances: [{ label: "ready", color: COLORS.blue }],
  };
  for (const [key, series] of Object.entries(charts)) {
    window.hearth.charts[key] = chart($(`[data-chart="${key}"]`, main), series);
  }
  const forms = { traffic: $("form.traffic", main), scale: $("form.scale", main) };

  const refresh = async () => {
    const [detail, metrics, events, logs] = await Promise.all([
      api(fn(name)),
      api(fn(name, `/metrics?seconds=${WINDOW_S}`)),
      api(fn(name, "/events?limit=50")),
      api(fn(name, "/logs?tail=100"), { text: true }),
    ]);
    const points = metrics.points;
    const { charts: shown } = window.hearth;
    shown.rps.setData(columns(points, "rps"));
    // A second without requests has no latency: a gap in the line, not a drop to zero.
    const timed = points.map((p) => (p.rps > 0 ? p : { ...p, p50_ms: null, p99_ms: null }));
    shown.latency.setData(columns(timed, "p50_ms", "p99_ms"));
    shown.errors.setData(columns(points, "errors_per_s"));
    shown.instances.setData(columns(points, "instances"));
    showSummary(main, detail);
    showVersions(main, detail);
    showInstances(main, detail.instances);
    showEvents(main, events);
    showLogs(main, logs);
    fillForms(forms, detail);
  };

  // Actions: each answer, or the API's error, is shown; then the page is read again.
  const act = async (button, what, done) => {
    button.disabled = true;
    try {
      notify(done(await what()), "info");
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) notify(error.message, "error");
    } finally {
      button.disabled = false;
    }
    await refresh().catch(() => {});
  };

  const rollback = $("button.rollback", main);
  rollback.addEventListener("click", () => {
    if (!confirm(`Roll ${name} back to its previous version?`)) return;
    act(
      rollback,
      () => api(fn(name, "/rollback"), { method: "POST" }),
      (change) => `${name} now serves version ${change.version}.`,
    );
  });

  forms.traffic.addEventListener("submit", (event) => {
    event.preventDefault();
    const weights = {};
    for (const input of forms.traffic.querySelectorAll("input")) {
      const share = Number(input.value);
      if (input.value !== "" && share > 0) weights[input.name] = share;
    }
    act(
      $("button", forms.traffic),
      () => api(fn(name, "/traffic"), { method: "POST", body: { weights } }),
      (change) => {
        delete forms.traffic.dataset.edited;
        return `${name}: traffic ${split(change.traffic)}.`;
      },
    );
  });

  forms.scale.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { min: Number(forms.scale.min.value), max: Number(forms.scale.max.value) };
    act(
      $("button", forms.scale),
      () => api(fn(name, "/scale"), { method: "PATCH", body }),
      (answer) => {
        delete forms.scale.dataset.edited;
        return `${name}: ${answer.changed || "scale unchanged"}.`;
      },
    );
  });

  // While someone is typing in a form, the refresh leaves its fields alone.
  for (const form of Object.values(forms)) {
    form.addEventListener("input", () => (form.dataset.edited = "yes"));
  }

  every(REFRESH_MS, refresh);
}

function showSummary(main, detail) {
  const urls = $(".urls", main);
  const links = detail.urls
    .filter((url) => /^https?:\/\//.test(url))
    .map((url) => h("a", { href: url, target: "_blank", rel: "noopener" }, url));
  const facts = [
    `serving ${split(detail.traffic)}`,
    `${detail.instances.length} instance(s)`,
    detail.queued ? `${detail.queued} queued` : "",
    detail.last_error ? `last error: ${detail.last_error}` : "",
  ].filter(Boolean);
  urls.replaceChildren(...links.flatMap((a) => [a, " "]), h("span", {}, facts.join(" · ")));
}

function showVersions(main, detail) {
  const rows = [...detail.versions].reverse().map((v) =>
    h(
      "tr",
      { className: v.status },
      h("td", {}, `v${v.number}`),
      h("td", {}, v.status),
      h("td", { className: "num" }, `${fixed(v.traffic, 0)}%`),
      h("td", {}, when(v.created)),
      h("td", { className: "wrap" }, v.error || ""),
    ),
  );
  $("table.versions tbody", main).replaceChildren(...rows);
}

function showInstances(main, instances) {
  const rows = instances.map((i) =>
    h(
      "tr",
      { className: i.state },
      h("td", {}, i.id),
      h("td", { className: "num" }, `v${i.version}`),
      h("td", { className: "num" }, String(i.pid)),
      h("td", {}, i.state),
      h("td", { className: "num" }, String(i.in_flight)),
      h("td", { className: "num" }, String(i.requests)),
      h("td", { className: "num" }, megabytes(i.memory_bytes)),
      h("td", { className: "num" }, duration(i.age)),
    ),
  );
  if (!rows.length) rows.push(h("tr", {}, h("td", { colSpan: 8 }, "No instances running.")));
  $("table.instances tbody", main).replaceChildren(...rows);
}

function showEvents(main, events) {
  const items = [...events].reverse().map((e) =>
    h(
      "li",
      { className: e.kind },
      h("time", {}, when(e.time)),
      h("span", { className: "kind" }, e.kind),
      h("span", { className: "message" }, e.message),
    ),
  );
  $("ol.events", main).replaceChildren(...items);
}

function showLogs(main, text) {
  const pre = $("pre.logs", main);
  const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 20;
  pre.textContent = text || "(no output yet)";
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

/** The traffic form gets an input per version that may serve (newest first), the scale
 * form the serving version's min and max; both only while nobody is editing them. */
function fillForms(forms, detail) {
  if (!forms.traffic.dataset.edited) {
    const inputs = detail.versions
      .filter((v) => v.status === "serving" || v.status === "ready")
      .reverse()
      .slice(0, 6)
      .map((v) =>
        h(
          "label",
          {},
          `v${v.number} `,
          h("input", {
            name: String(v.number),
            type: "number",
            min: "0",
            max: "100",
            step: "1",
            value: String(Math.round(v.traffic)),
          }),
        ),
      );
    $(".weights", forms.traffic).replaceChildren(...inputs);
  }
  const scale = detail.spec && detail.spec.scale;
  if (scale && !forms.scale.dataset.edited) {
    forms.scale.min.value = scale.min;
    forms.scale.max.value = scale.max;
  }
}

// --- start ---------------------------------------------------------------------------

$("#logout").addEventListener("click", logout);
$("#notice-close").addEventListener("click", () => ($("#notice").hidden = true));
window.addEventListener("hashchange", () => route());
route();
