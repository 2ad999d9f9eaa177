// The console's page: reads a race from GET /api/race (server-sent events) and draws each
// gateway's waterfall as SVG. The server sends the load and does the sums; this only draws.

const SIDES = ["sync", "async"];
// Okabe and Ito's palette, safe for colour-blind readers; failures also get a dashed outline.
const SOURCE_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442"];
const FAILED = "#D55E00";
const WAIT = "#BBBBBB";
const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const LABEL = 36;
const AXIS = 22;

let race = null; // everything the server sent: start, answers, gauges, summary
let drawPending = false;

function el(name, attributes = {}, text = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function sourceColour(name) {
  const names = Object.keys(race.start.delays_ms);
  const index = names.indexOf(name);
  return SOURCE_COLOURS[(index < 0 ? names.length : index) % SOURCE_COLOURS.length];
}

function fmt(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

// The shared time axis: the latest answer or ideal line of either side.
function timeSpan() {
  let span = 1;
  for (const side of SIDES) {
    span = Math.max(span, race.start.ideal_ms[side]);
    for (const answer of race.answers[side]) span = Math.max(span, answer.received_ms);
  }
  return span * 1.05;
}

function drawSide(side) {
  const section = document.getElementById(`side-${side}`);
  const holder = section.querySelector(".waterfall");
  const k = race.start.requests;
  const rowHeight = Math.max(3, Math.min(18, Math.floor(420 / k)));
  const height = AXIS + k * rowHeight + 4;
  const span = timeSpan();
  const x = (ms) => LABEL + (ms / span) * (WIDTH - LABEL - 8);
  const svg = el("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`,
    role: "img",
    "aria-label": `${side} gateway: one row per request, one bar per source call`,
    class: "chart",
    "data-side": side,
  });
  // The axis: ticks every round step.
  const step = [50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000].find((s) => span / s <= 8);
  for (let t = 0; t <= span; t += step) {
    svg.append(el("line", { x1: x(t), x2: x(t), y1: AXIS - 4, y2: height, class: "grid" }));
    svg.append(el("text", { x: x(t), y: AXIS - 8, class: "tick" }, fmt(t)));
  }
  const ideal = race.start.ideal_ms[side];
  svg.append(el("line", { x1: x(ideal), x2: x(ideal), y1: AXIS - 4, y2: height, class: "ideal" }));
  svg.append(el("text", { x: x(ideal) + 3, y: height - 2, class: "ideal-label" }, "ideal"));
  const answers = [...race.answers[side]].sort((a, b) => a.index - b.index);
  for (const answer of answers) {
    const y = AXIS + answer.index * rowHeight;
    const row = el("g", {
      class: `row${answer.partial ? " partial" : ""}${answer.status === 200 ? "" : " not-ok"}`,
      "data-index": answer.index,
      "data-status": answer.status ?? "none",
    });
    const barHeight = Math.max(2, rowHeight - 2);
    if (rowHeight >= 10) {
      row.append(el("text", { x: LABEL - 4, y: y + barHeight - 1, class: "index" }, `${answer.index + 1}`));
    }
    // Before the fan-out started: the wait in queues and on the network.
    const fanOutStart = answer.gateway_elapsed_ms === null
      ? answer.received_ms
      : answer.received_ms - answer.gateway_elapsed_ms;
    row.append(el("rect", {
      x: x(answer.sent_ms), y, height: barHeight,
      width: Math.max(0, x(fanOutStart) - x(answer.sent_ms)), class: "wait", fill: WAIT,
    }));
    // One lane per source within the row, so that calls that overlap are all seen.
    const lane = barHeight / Math.max(1, answer.sources.length);
    answer.sources.forEach((call, i) => {
      const bar = el("rect", {
        x: x(fanOutStart + call.started_ms), y: y + i * lane, height: Math.max(1, lane - (lane >= 3 ? 0.5 : 0)),
        width: Math.max(1, x(fanOutStart + call.started_ms + call.elapsed_ms) - x(fanOutStart + call.started_ms)),
        fill: call.ok ? sourceColour(call.name) : FAILED,
        class: call.ok ? "call" : "call failed",
        "data-source": call.name,
      });
      bar.append(el("title", {}, `${call.name}: started ${call.started_ms.toFixed(1)} ms into the fan-out, took ${call.elapsed_ms.toFixed(1)} ms${call.ok ? "" : `, failed: ${call.error_kind}`}`));
      row.append(bar);
    });
    row.append(el("line", { x1: x(answer.received_ms), x2: x(answer.received_ms), y1: y, y2: y + barHeight, class: "answer" }));
    const summary = `request ${answer.index + 1}: sent at ${answer.sent_ms} ms, answered at ${answer.received_ms} ms, status ${answer.status ?? "none"}${answer.partial ? ", partial" : ""}${answer.error ? `, ${answer.error}` : ""}`;
    row.prepend(el("title", {}, summary));
    svg.append(row);
  }
  holder.replaceChildren(svg);
}

function numbersOf(side) {
  const start = race.start;
  const gateway = start.gateways[side];
  const summary = race.summary ? race.summary.sides.find((s) => s.side === side) : null;
  const answered = race.answers[side].length;
  const rows = [
    ["route", `${start.paths[side]} (${start.routes[side]})`],
    ["workers, client", `${gateway.workers}, ${gateway.http_client}`],
    ["answers", summary ? `${summary.answered} ok, ${summary.failed} failed` : `${answered} of ${start.requests}`],
    ["ideal, last answer", `${fmt(start.ideal_ms[side])} (bound by the ${start.ideal_binding[side]})`],
  ];
  if (summary) {
    rows.push(
      ["wall time", `${fmt(summary.wall_ms)}: ${(summary.wall_ms / summary.ideal_ms).toFixed(2)} of its ideal`, summary.wall_ms],
      ["throughput", `${summary.throughput.toFixed(1)} requests/s`, summary.throughput],
      ["p50, p99", `${fmt(summary.p50_ms)}, ${fmt(summary.p99_ms)}`, summary.p99_ms],
    );
  }
  return rows;
}

function drawNumbers(side) {
  const body = document.querySelector(`#side-${side} .numbers tbody`);
  body.replaceChildren(...numbersOf(side).map(([name, value, raw]) => {
    const row = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = name;
    const td = document.createElement("td");
    td.textContent = value;
    td.dataset.name = name;
    if (raw !== undefined) td.dataset.value = raw; // the number itself, for tools and tests
    row.append(th, td);
    return row;
  }));
  const gauges = race.gauges[side];
  const line = document.querySelector(`#side-${side} .gauges`);
  if (gauges.length) {
    const first = gauges[0];
    const last = gauges[gauges.length - 1];
    const lag = last.loop_lag_s === null || first.loop_lag_s === null ? "n/a" : `+${(last.loop_lag_s - first.loop_lag_s).toFixed(2)} s`;
    line.textContent = `live: ${last.in_flight ?? "n/a"} requests in flight, ${last.tokens_in_use ?? "n/a"} threadpool tokens in use, event-loop lag ${lag}`;
  }
}

function drawTable() {
  const body = document.querySelector("#rows tbody");
  const rows = [];
  for (const side of SIDES) {
    for (const answer of [...race.answers[side]].sort((a, b) => a.index - b.index)) {
      const row = document.createElement("tr");
      const calls = answer.sources.map((c) => `${c.name} ${c.started_ms.toFixed(0)} + ${c.elapsed_ms.toFixed(0)}${c.ok ? "" : ` (${c.error_kind})`}`).join("; ");
      for (const value of [side, answer.index + 1, answer.sent_ms, answer.received_ms, `${answer.status ?? "none"}${answer.partial ? " partial" : ""}`, calls]) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.append(cell);
      }
      rows.push(row);
    }
  }
  body.replaceChildren(...rows);
}

function drawAll() {
  drawPending = false;
  for (const side of SIDES) {
    drawSide(side);
    drawNumbers(side);
  }
  drawTable();
  const names = Object.keys(race.start.delays_ms);
  const legend = document.getElementById("legend");
  legend.textContent = `Bars: grey, waiting before the gateway began; ${names.map((n) => `${n} (${Math.round(race.start.delays_ms[n])} ms at rest)`).join(", ")} in their colours; vermillion with a dashed outline, a failed call; the dashed line, the ideal.`;
  legend.dataset.delays = JSON.stringify(race.start.delays_ms);
}

function scheduleDraw() {
  if (!drawPending) {
    drawPending = true;
    requestAnimationFrame(drawAll);
  }
}

function receive(event, data) {
  if (event === "start") {
    race = { start: data, answers: { sync: [], async: [] }, gauges: { sync: [], async: [] }, summary: null };
    for (const side of SIDES) {
      const gateway = data.gateways[side];
      document.querySelector(`#side-${side} .about`).textContent = `${data.paths[side]}, ${data.routes[side]}: ${gateway.workers} worker(s), ${gateway.http_client}`;
    }
  } else if (event === "answer") {
    race.answers[data.side].push(data);
  } else if (event === "gauges") {
    race.gauges[data.side].push(data);
  } else if (event === "summary") {
    race.summary = data;
  }
  scheduleDraw();
}

// Server-sent events over fetch, so that a 409 or a 422 can be read and shown.
async function readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) receive(event, JSON.parse(data.join("\n")));
    }
  }
}

function formParams(form) {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) if (value !== "") params.set(name, value);
  return params;
}

function describeError(status, body) {
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((d) => `${d.loc[d.loc.length - 1]}: ${d.msg}`).join("; ");
  }
  return body && body.detail ? body.detail : `HTTP ${status}`;
}

async function run(form) {
  const status = document.getElementById("status");
  const button = document.getElementById("run");
  const params = formParams(form);
  history.replaceState(null, "", `?${params}`); // a deep link to these settings
  button.disabled = true;
  status.textContent = "racing…";
  try {
    const response = await fetch(`/api/race?${params}`);
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      status.textContent = `refused: ${describeError(response.status, body)}`;
      return;
    }
    await readEvents(response);
    status.textContent = race && race.summary ? "done" : "the race ended early";
    document.getElementById("download-json").disabled = !race;
    document.getElementById("download-svg").disabled = !race;
  } finally {
    button.disabled = false;
  }
}

function download(name, type, text) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  link.click();
  URL.revokeObjectURL(link.href);
}

function bothAsOneSvg() {
  const charts = SIDES.map((side) => document.querySelector(`#side-${side} svg`));
  const heights = charts.map((c) => Number(c.getAttribute("viewBox").split(" ")[3]));
  const out = el("svg", { xmlns: SVG_NS, viewBox: `0 0 ${WIDTH} ${heights[0] + heights[1] + 40}` });
  out.append(el("style", {}, document.querySelector("style#chart-style").textContent));
  let y = 0;
  SIDES.forEach((side, i) => {
    out.append(el("text", { x: 4, y: y + 14, class: "tick" }, `${side} gateway`));
    const g = el("g", { transform: `translate(0 ${y + 20})` });
    g.append(...[...charts[i].childNodes].map((n) => n.cloneNode(true)));
    out.append(g);
    y += heights[i] + 20;
  });
  return new XMLSerializer().serializeToString(out);
}

function restoreFromLink(form) {
  const params = new URLSearchParams(location.search);
  for (const [name, value] of params) if (form.elements[name]) form.elements[name].value = value;
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("race");
  restoreFromLink(form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(form);
  });
  document.getElementById("download-json").addEventListener("click", () => download("race.json", "application/json", JSON.stringify(race, null, 1)));
  document.getElementById("download-svg").addEventListener("click", () => download("race.svg", "image/svg+xml", bothAsOneSvg()));
});
