/* pgotel dashboard: charts (ECharts, data from the JSON API), auto-refresh, CSRF header for htmx.
 * Runs under a strict CSP: no inline script, no eval. Text from telemetry is only ever set as text. */
(function () {
  "use strict";

  var root = document.getElementById("dashboard");
  if (!root) { return; }
  var API = root.dataset.api;
  var PERIOD_HOURS = Number(root.dataset.periodHours);
  var REFRESH_MS = 10000;
  var MAX_SAMPLES = 120;
  var STORAGE_KEY = "pgotel.autoRefresh";
  var csrfMeta = document.querySelector('meta[name="pgotel-csrf"]');

  var C = {
    text: "#c9d4e0", muted: "#7d8b9c", line: "#253040", cyan: "#22d3ee", green: "#3fd97f",
    amber: "#f2b33d", red: "#ff5d5d", violet: "#a78bfa", bg: "#11171f"
  };
  var MONO = "'JetBrains Mono', 'DejaVu Sans Mono', 'Liberation Mono', monospace";

  document.body.addEventListener("htmx:configRequest", function (event) {
    if (csrfMeta) { event.detail.headers["X-CSRF-Token"] = csrfMeta.content; }
  });

  function baseOption(yName) {
    return {
      backgroundColor: "transparent",
      animation: false,
      textStyle: { fontFamily: MONO, color: C.text },
      grid: { left: 56, right: 18, top: 34, bottom: 28 },
      legend: { top: 4, right: 8, textStyle: { color: C.muted, fontFamily: MONO, fontSize: 11 }, itemWidth: 14, itemHeight: 4 },
      tooltip: {
        trigger: "axis", backgroundColor: "#0b0f14", borderColor: C.line, borderRadius: 0,
        textStyle: { color: C.text, fontFamily: MONO, fontSize: 11 }
      },
      xAxis: {
        type: "time", axisLine: { lineStyle: { color: C.line } }, splitLine: { show: false },
        axisLabel: { color: C.muted, fontFamily: MONO, fontSize: 10, hideOverlap: true }
      },
      yAxis: {
        type: "value", name: yName, nameTextStyle: { color: C.muted, fontFamily: MONO, fontSize: 10, align: "left" },
        axisLine: { show: false }, splitLine: { lineStyle: { color: C.line, type: "dashed" } },
        axisLabel: { color: C.muted, fontFamily: MONO, fontSize: 10 }
      },
      series: []
    };
  }

  function line(name, color, data, extra) {
    var series = {
      name: name, type: "line", showSymbol: false, smooth: false, data: data,
      lineStyle: { width: 1.6, color: color }, itemStyle: { color: color }
    };
    return Object.assign(series, extra || {});
  }

  var charts = {};
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    charts[el.dataset.chart] = echarts.init(el, null, { renderer: "canvas" });
  });
  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (key) { charts[key].resize(); });
  });

  function showEmpty(key, empty) {
    var overlay = document.getElementById("chart-" + key + "-empty");
    if (overlay) { overlay.hidden = !empty; }
  }

  function getJSON(path, params) {
    var url = new URL(API + path, window.location.origin);
    Object.keys(params || {}).forEach(function (name) { url.searchParams.set(name, params[name]); });
    return fetch(url.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); }
        if (!response.ok) { throw new Error(path + ": HTTP " + response.status); }
        return response.json();
      });
  }

  // An interval without requests has no latency (the API reports 0 for every figure): leave a gap rather
  // than draw a line at 0 ms, and mark each point so an interval between two gaps still shows.
  function latencyOf(key) {
    return function (p) { return [p.time, p.avg_latency_ms > 0 ? p[key] : null]; };
  }

  function drawLatency(points) {
    var option = baseOption("ms");
    var marked = { showSymbol: true, symbolSize: 3 };
    option.series = [
      line("P50", C.green, points.map(latencyOf("p50_latency_ms")), marked),
      line("P95", C.cyan, points.map(latencyOf("p95_latency_ms")), marked),
      line("P99", C.amber, points.map(latencyOf("p99_latency_ms")), marked)
    ];
    charts.latency.setOption(option, true);
    showEmpty("latency", points.length === 0);
  }

  function drawTraffic(points) {
    var option = baseOption("requests");
    option.series = [
      { name: "Requests", type: "bar", barMaxWidth: 10, itemStyle: { color: C.cyan, opacity: 0.75 },
        data: points.map(function (p) { return [p.time, p.request_count]; }) },
      line("Errors", C.red, points.map(function (p) { return [p.time, p.error_count]; }), { step: "middle" })
    ];
    charts.traffic.setOption(option, true);
    showEmpty("traffic", points.length === 0);
  }

  var samples = { postgres: [], cpu: [], memory: [] };

  function pushSample(list, time, value) {
    if (typeof value !== "number") { return; }
    list.push([time, value]);
    if (list.length > MAX_SAMPLES) { list.shift(); }
  }

  function drawSampled(summary) {
    var now = Date.now();
    var postgres = summary.postgres || {};
    var system = summary.system || {};
    pushSample(samples.postgres, now, postgres.connections_total);
    pushSample(samples.cpu, now, system.cpu_percent);
    pushSample(samples.memory, now, system.memory_percent);

    // Until ten minutes of samples exist, show a ten-minute axis rather than a zoomed-in point.
    var windowStart = Math.min(samples.cpu.length ? samples.cpu[0][0] : now, now - 10 * 60 * 1000);

    var pg = baseOption("connections");
    pg.xAxis.min = windowStart;
    pg.yAxis.minInterval = 1;
    pg.series = [line("Connections", C.cyan, samples.postgres.slice(), { showSymbol: true, symbolSize: 4 })];
    charts.postgres.setOption(pg, true);
    showEmpty("postgres", samples.postgres.length === 0);

    var resources = baseOption("%");
    resources.xAxis.min = windowStart;
    resources.yAxis.max = 100;
    resources.series = [
      line("CPU", C.green, samples.cpu.slice(), { showSymbol: true, symbolSize: 4 }),
      line("Memory", C.violet, samples.memory.slice(), { showSymbol: true, symbolSize: 4 })
    ];
    charts.resources.setOption(resources, true);
    showEmpty("resources", samples.cpu.length === 0 && samples.memory.length === 0);
  }

  function refreshCharts() {
    var period = { period_hours: PERIOD_HOURS };
    return Promise.all([
      getJSON("/timeseries/latency", period).then(function (body) { drawLatency(body.points); }),
      getJSON("/timeseries/requests", period).then(function (body) { drawTraffic(body.points); }),
      getJSON("/summary", period).then(drawSampled)
    ]).then(function () {
      root.dataset.chartsLoaded = String(Number(root.dataset.chartsLoaded || "0") + 1);
    }).catch(function (error) {
      root.dataset.chartsError = error.message;
    });
  }

  var toggle = document.getElementById("auto-refresh");
  var timer = null;

  function tick() {
    htmx.trigger(document.body, "pgotel-refresh");
    refreshCharts();
  }

  function applyToggle() {
    if (timer !== null) { window.clearInterval(timer); timer = null; }
    if (toggle.checked) { timer = window.setInterval(tick, REFRESH_MS); }
    window.localStorage.setItem(STORAGE_KEY, toggle.checked ? "on" : "off");
  }

  if (toggle) {
    toggle.checked = window.localStorage.getItem(STORAGE_KEY) !== "off";
    toggle.addEventListener("change", applyToggle);
    applyToggle();
  }
  refreshCharts();
}());
