// A workspace's dashboard: GET /api/v1/dashboard (figures.py builds what it answers) and the
// usage chart from GET /api/v1/usage?group_by=day,user, refreshed every few seconds.
(function () {
  "use strict";
  const { DATA, api, fmt, el, fill, badge, problem, updated, every } = window.Flightbase;
  const charts = window.FlightbaseCharts;
  const $ = id => document.getElementById(id);
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                   "#9c755f", "#bab0ac"];
  let workspace = DATA.workspace;
  let chart = null;
  if (!workspace) return;

  function bar(node, percent) {
    node.style.width = Math.min(100, percent || 0) + "%";
    node.classList.toggle("bg-danger", (percent || 0) > 100);
  }

  function show(d) {
    const unit = d.gpu_kind === "cpu-slot" ? "CPU slots" : "GPUs";
    $("gpu-label").textContent = unit + " in use / quota";
    const g = d.gpus;
    $("gpus-in-use").textContent = g.in_use + " / " + (g.quota == null ? "no quota" : g.quota);
    $("gpus-in-use").dataset.inUse = g.in_use;
    $("gpus-in-use").dataset.quota = g.quota == null ? "" : g.quota;
    bar($("gpus-bar"), g.quota ? g.percent : (g.in_use ? 100 : 0));
    $("gpus-detail").textContent = `${g.trainings} by trainings, ${g.notebooks} by notebooks` +
      (g.borrowed ? `, ${g.borrowed} borrowed` : "");
    $("running-count").textContent = d.running.length;
    $("queued-count").textContent = d.queue.length;
    $("cluster").textContent = `${g.cluster_free} of ${g.cluster_total} ${unit} free in the installation`;

    const w = d.window;
    $("window-state").textContent = { open: "open", "not-started": "not started", ended: "ended", unlimited: "no end" }[w.state] || w.state;
    $("window-dates").textContent = w.state === "unlimited" ? "no start or end date" :
      `${w.start_date || "…"} to ${w.end_date || "…"}` + (w.days_left != null && w.state === "open" ? ` (${w.days_left} days left)` : "") +
      (w.note ? ` — ${w.note}` : "");

    const s = d.storage;
    $("storage-used").textContent = s ? fmt.bytes(s.used_bytes) + " / " + (s.quota_bytes == null ? "no quota" : fmt.bytes(s.quota_bytes)) : "–";
    $("storage-used").dataset.usedBytes = s ? s.used_bytes : "";
    bar($("storage-bar"), s ? s.percent : 0);
    $("storage-detail").textContent = s ? `datasets ${fmt.bytes(s.datasets_bytes)}, images ${fmt.bytes(s.images_bytes)}` : "";

    fill($("running"), d.running.map(r => el("tr", { dataset: { job: r.job_id } },
      el("td", {}, r.name, r.restarts ? el("span", { class: "text-body-secondary small" }, ` (restarts: ${r.restarts})`) : null),
      el("td", { class: "user" }, r.user),
      el("td", { class: "gpus" }, r.gpus),
      el("td", { class: "hosts fb-mono" }, Object.entries(r.placement).map(([h, g]) => `${h}: ${g.join(",")}`).join("; ")),
      el("td", { class: "elapsed" }, fmt.duration(r.elapsed_seconds)),
      el("td", { class: "utilisation" }, fmt.percent(r.utilisation_percent)))), "no job is running");

    fill($("queue"), d.queue.map(q => el("tr", { dataset: { job: q.job_id } },
      el("td", { class: "position" }, q.position == null ? "held" : q.position),
      el("td", {}, q.name, q.kind === "lease" ? el("span", { class: "badge text-bg-secondary ms-1" }, "notebook") : null),
      el("td", { class: "user" }, q.user),
      el("td", { class: "gpus" }, q.gpus),
      el("td", { class: "estimated-start" }, fmt.time(q.estimated_start),
        // the range (docs/scheduling.md, "Start estimates") when it is wider than 2 min
        q.estimated_start != null && q.estimated_start_range && q.estimated_start_range[1] - q.estimated_start_range[0] >= 120
          ? el("div", { class: "estimated-range small text-body-secondary" },
            `${fmt.time(q.estimated_start_range[0])} – ${fmt.time(q.estimated_start_range[1])}`) : null),
      el("td", { class: "reason small" }, q.reason))), "the queue is empty");

    fill($("recent"), d.recent.map(t => el("tr", { dataset: { training: t.training_id } },
      el("td", {}, t.name), el("td", {}, t.user), el("td", {}, badge(t.outcome)), el("td", {}, t.jobs),
      el("td", {}, fmt.time(t.ended_at)), el("td", { class: "duration" }, fmt.duration(t.duration_seconds)))),
      "no training has ended yet");

    fill($("notebooks"), d.notebooks.map(n => el("tr", { dataset: { lease: n.lease_id } },
      el("td", {}, n.user), el("td", {}, n.server || "(default)"), el("td", { class: "fb-mono" }, n.gpus.join(",")),
      el("td", {}, fmt.duration(n.held_seconds)),
      el("td", { class: "idle" }, n.idle_seconds == null ? "not checked yet" : fmt.duration(n.idle_seconds)),
      el("td", { class: "small" }, n.note || ""))), "no notebook holds a GPU");

    fill($("datasets"), d.datasets.map(x => el("tr", { dataset: { dataset: x.name } },
      el("td", { class: "name" }, x.name), el("td", {}, x.latest_version == null ? "–" : x.latest_version),
      el("td", {}, x.versions), el("td", { class: "size", dataset: { bytes: x.size_bytes } }, fmt.bytes(x.size_bytes)),
      el("td", {}, x.created_by))), "no dataset");

    fill($("images"), d.images.map(x => el("tr", { dataset: { image: x.name } },
      el("td", {}, x.name), el("td", {}, x.builtin ? "built-in" : x.source),
      el("td", { class: "fb-mono" }, x.reference), el("td", {}, fmt.bytes(x.size_bytes)))), "no image");
  }

  function drawUsage(usage) {
    const today = usage.now.slice(0, 10);
    const series = charts.usageSeries(usage.rows, today, 30);
    $("usage-total").textContent = `${fmt.hours(series.total)} GPU-hours in all`;
    $("usage-total").dataset.total = series.total;
    $("usage-note").textContent = series.datasets.length ? "" : "No GPU was used in this workspace in the last 30 days.";
    const canvas = $("usage-chart");
    if (!canvas || !window.Chart) return;
    const datasets = series.datasets.map((s, i) => ({ ...s, backgroundColor: PALETTE[i % PALETTE.length], stack: "users" }));
    if (chart) {
      chart.data.labels = series.labels;
      chart.data.datasets = datasets;
      chart.update("none");
      return;
    }
    const { text, grid } = themeColors();
    chart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: series.labels, datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: { x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true, color: text }, grid: { color: grid } },
                  y: { stacked: true, beginAtZero: true, ticks: { color: text }, grid: { color: grid },
                       title: { display: true, text: "GPU-hours", color: text } } },
        plugins: { legend: { position: "bottom", labels: { color: text } } },
      },
    });
  }

  // The chart's text and grid in the page's colours: the hub's light or dark theme (data-bs-theme)
  function themeColors() {
    const style = getComputedStyle(document.body);
    return { text: style.color, grid: style.getPropertyValue("--bs-border-color-translucent").trim() || "rgba(128,128,128,.25)" };
  }

  function restyleChart() {
    if (!chart) return;
    const { text, grid } = themeColors();
    const { x, y } = chart.options.scales;
    x.ticks.color = y.ticks.color = y.title.color = chart.options.plugins.legend.labels.color = text;
    x.grid.color = y.grid.color = grid;
    chart.update("none");
  }
  // the hub's theme toggle changes the attribute on <html>
  new MutationObserver(restyleChart).observe(document.documentElement, { attributes: true, attributeFilter: ["data-bs-theme"] });

  async function refresh() {
    const path = "/dashboard?workspace=" + encodeURIComponent(workspace);
    try {
      show(await api("GET", path));
      problem(null);
    } catch (e) {
      problem("The dashboard could not be read: " + e.message);
    }
    try {
      drawUsage(await api("GET", "/usage?group_by=day,user&workspace=" + encodeURIComponent(workspace)));
    } catch (e) {
      $("usage-note").textContent = "Usage could not be read: " + e.message;
    }
    updated();
  }

  $("workspace").addEventListener("change", event => {
    workspace = event.target.value;
    const url = new URL(window.location.href);
    url.searchParams.set("workspace", workspace);
    window.history.replaceState(null, "", url);
    $("registry-link").href = DATA.links.registry + "?workspace=" + encodeURIComponent(workspace);
    if (chart) { chart.destroy(); chart = null; }
    refresh();
  });
  every(DATA.refresh_seconds, refresh);
})();
