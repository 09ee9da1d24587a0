// The administrators' page: GET /api/v1/admin/overview (nodes and slots, workspaces, people, the
// registry's audit events), GET /jobs (every training's jobs), GET /usage (this week's GPU-hours
// per workspace) and GET /audit (the jobqueue's own audit log), refreshed every few seconds.
// Cancel, priority and requeue change a job with the page's XSRF token (pages.js's api()).
(function () {
  "use strict";
  const { DATA, api, fmt, el, fill, badge, problem, updated, every } = window.Flightbase;
  const charts = window.FlightbaseCharts;
  const $ = id => document.getElementById(id);
  const LIVE = new Set(["queued", "preempted", "starting", "running"]);
  const JOBS_SHOWN = 200;
  const AUDIT_SHOWN = 20;

  function status(message, kind) {
    const box = $("admin-status");
    box.textContent = message || "";
    box.className = "ms-auto small" + (kind ? " text-" + kind : "");
  }

  function windowText(w) {
    if (!w) return "–";
    if (w.state === "unlimited") return "no dates";
    const dates = `${w.start_date || "…"} to ${w.end_date || "…"}`;
    return { open: "open", "not-started": "not started", ended: "ended" }[w.state] + ", " + dates;
  }

  function memory(slot) {
    if (slot.memory_used_bytes == null) return slot.memory_total_bytes ? "– / " + fmt.bytes(slot.memory_total_bytes) : "–";
    return fmt.bytes(slot.memory_used_bytes) + " / " + fmt.bytes(slot.memory_total_bytes);
  }

  function showNodes(overview) {
    const unit = overview.gpu_kind === "cpu-slot" ? "CPU slot" : "GPU";
    const now = overview.now;
    const cards = overview.nodes.map(node => {
      const table = el("table", { class: "table table-sm fb-table mb-0" },
        el("thead", {}, el("tr", {}, ...[unit, "Name", "Holder", "Workspace", "Who", "Since", "Utilisation", "Memory"]
          .map(h => el("th", {}, h)))),
        el("tbody"));
      const rows = node.slots.map(s => el("tr", { class: "slot", dataset: { index: s.index, job: s.holder ? s.holder.job_id : "" } },
        el("td", { class: "fb-mono" }, s.index),
        el("td", {}, s.name),
        s.holder ? el("td", { class: "holder" }, s.holder.name,
                      s.holder.kind === "lease" ? el("span", { class: "badge text-bg-secondary ms-1" }, "notebook") : null)
                 : el("td", { class: "holder fb-slot-free" }, "free"),
        el("td", {}, s.holder ? s.holder.workspace : ""),
        el("td", {}, s.holder ? s.holder.user : ""),
        el("td", {}, s.since == null ? "" : fmt.duration(now - s.since) + " ago"),
        el("td", {}, fmt.percent(s.utilisation_percent)),
        el("td", {}, memory(s))));
      fill(table, rows, "no " + unit);
      const labels = Object.entries(node.labels).map(([k, v]) => `${k}=${v}`).join(", ");
      return el("div", { class: "card mb-3 node", dataset: { node: node.name } },
        el("div", { class: "card-header d-flex flex-wrap gap-2" },
          el("span", { class: "fw-semibold" }, node.name),
          node.schedulable ? null : el("span", { class: "badge text-bg-warning" }, "not schedulable"),
          el("span", { class: "ms-auto small text-body-secondary node-free" },
             `${node.free} of ${node.total} free` + (labels ? " · " + labels : ""))),
        el("div", { class: "table-responsive" }, table));
    });
    $("nodes").replaceChildren(...(cards.length ? cards : [el("p", { class: "text-body-secondary" }, "no node")]));
  }

  function showWorkspaces(overview, weekHours) {
    fill($("workspaces"), overview.workspaces.map(w => el("tr", { dataset: { workspace: w.name } },
      el("td", { class: "name" }, w.name,
         Object.keys(w.settings_errors).length
           ? el("span", { class: "badge text-bg-danger ms-1", title: Object.entries(w.settings_errors).map(([k, v]) => `${k}: ${v}`).join("; ") }, "bad settings")
           : null),
      el("td", {}, w.members),
      el("td", {}, w.managers.join(", ") || "–"),
      el("td", { class: "in-use" }, `${w.in_use} / ${w.quota == null ? "no quota" : w.quota}`),
      el("td", {}, w.allow_borrowing == null ? "–" : (w.allow_borrowing ? (w.borrowing_limit == null ? "allowed" : `up to ${w.borrowing_limit}`) : "no") + (w.borrowed ? ` (${w.borrowed} borrowed)` : "")),
      el("td", { class: "queued" }, w.queued),
      el("td", { class: "week-hours" }, fmt.hours(weekHours[w.name] || 0)),
      el("td", {}, windowText(w.window)))), "no workspace");
  }

  function showUsers(overview) {
    fill($("users"), overview.users.map(u => el("tr", { dataset: { user: u.name } },
      el("td", {}, u.name),
      el("td", {}, u.workspaces.map(w => w.workspace + (w.manager ? " (manager)" : "")).join(", ")))),
      "no one is in a workspace yet");
  }

  function showAudit(table, note, feed) {
    const events = feed.events || [];
    fill(table, events.map(e => el("tr", { dataset: { id: e.id } },
      el("td", { class: "small" }, new Date(e.at).toLocaleString()),
      el("td", {}, e.actor || "(" + e.actor_kind + ")"),
      el("td", { class: "fb-mono" }, `${e.method} ${e.route || ""}`),
      el("td", { class: "fb-mono small" }, Object.values(e.target || {}).join(" ")),
      el("td", {}, e.workspace || ""),
      el("td", {}, el("span", { class: "badge text-bg-" + (e.status < 400 ? "success" : "danger") }, e.status)))),
      feed.available ? "nothing recorded yet" : "not available");
    note.textContent = feed.message || "";
  }

  // -- jobs, with their actions -------------------------------------------------------------------
  // `label` names the action in the status line; `done` says what happened, from the job the API answers
  async function act(label, job, call, done) {
    status(`${label} ${job.name} (${job.id})…`);
    try {
      const after = await call();
      status(`${label} ${job.name}: ` + (done ? done(after) : `now ${after.state}`)
             + (after.queue ? `, position ${after.queue.position}` : "") + `, priority ${after.priority}`, "success");
    } catch (e) {
      status(`${label} ${job.name} failed: ${e.message}`, "danger");
    }
    refresh();
  }

  function actions(job) {
    if (!LIVE.has(job.state)) return el("td", { class: "actions" });
    const base = "/jobs/" + encodeURIComponent(job.id);
    const buttons = [el("button", {
      type: "button", class: "btn btn-sm btn-outline-danger me-1 cancel",
      onclick: () => { if (window.confirm(`Cancel ${job.name} (${job.id}) for good?`)) act("Cancel", job, () => api("POST", base + "/cancel")); },
    }, "Cancel")];
    if (job.kind !== "lease" && (job.state === "running" || job.state === "starting")) {
      buttons.push(el("button", {
        type: "button", class: "btn btn-sm btn-outline-warning requeue",
        title: "Stop it and put it back in the queue (it keeps its checkpoint)",
        onclick: () => {
          if (!window.confirm(`Requeue ${job.name} (${job.id})? It stops now and waits for GPUs again.`)) return;
          act("Requeue", job, () => api("POST", base + "/requeue"),
              after => (after.state === "running" || after.state === "starting") ? "stopping, then back to the queue"
                                                                                 : `now ${after.state}`);
        },
      }, "Requeue"));
    }
    return el("td", { class: "actions text-nowrap" }, ...buttons);
  }

  function priority(job) {
    if (!LIVE.has(job.state)) return el("td", { class: "priority" }, job.priority);
    const input = el("input", { type: "number", min: -100, max: 100, step: 1, value: job.priority,
                                class: "form-control form-control-sm priority-input", style: "width: 5rem",
                                "aria-label": `Priority of ${job.name}` });
    const set = () => act("Priority", job, () => api("PUT", "/jobs/" + encodeURIComponent(job.id) + "/priority",
                                                      { priority: Number(input.value) }));
    input.addEventListener("keydown", e => { if (e.key === "Enter") set(); });
    return el("td", { class: "priority" }, el("div", { class: "input-group input-group-sm flex-nowrap" }, input,
      el("button", { type: "button", class: "btn btn-outline-secondary set-priority", onclick: set }, "Set")));
  }

  function showJobs(jobs) {
    const table = $("jobs");
    // not while someone types a priority: the refresh would replace the field under them
    if (table.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    fill(table, jobs.map(j => el("tr", { dataset: { job: j.id, state: j.state } },
      el("td", {}, j.name, el("div", { class: "fb-mono text-body-secondary" }, j.id)),
      el("td", {}, j.workspace),
      el("td", {}, j.created_by),
      el("td", { class: "state" }, badge(j.state), j.kind === "lease" ? el("span", { class: "badge text-bg-secondary ms-1" }, "notebook") : null,
         j.restarts ? el("div", { class: "small text-body-secondary restarts" }, `restarts: ${j.restarts}`) : null),
      el("td", {}, j.gpus),
      el("td", { class: "fb-mono" }, Object.entries(j.placement || {}).map(([h, g]) => `${h}: ${g.join(",")}`).join("; ")),
      el("td", { class: "position" }, j.queue ? `${j.queue.position} (${j.queue.reason})` : ""),
      priority(j),
      actions(j))), "no training has run yet");
  }

  async function refresh() {
    const today = new Date().toISOString().slice(0, 10);
    const [overview, jobs, week, audit] = await Promise.allSettled([
      api("GET", "/admin/overview"),
      api("GET", "/jobs?limit=" + JOBS_SHOWN),
      api("GET", "/usage?group_by=workspace&from=" + charts.weekStart(today)),
      api("GET", "/audit?limit=" + AUDIT_SHOWN),
    ]);
    const failed = [["overview", overview], ["jobs", jobs], ["usage", week], ["audit log", audit]]
      .filter(([, r]) => r.status === "rejected").map(([what, r]) => `${what}: ${r.reason.message}`);
    problem(failed.length ? "Some figures could not be read: " + failed.join("; ") : null);
    if (overview.status === "fulfilled") {
      showNodes(overview.value);
      showWorkspaces(overview.value, week.status === "fulfilled" ? charts.hoursByWorkspace(week.value.rows) : {});
      showUsers(overview.value);
      showAudit($("audit-registry"), $("audit-registry-note"), overview.value.registry_audit);
    }
    $("week-note").textContent = `GPU-hours since Monday ${charts.weekStart(today)} (UTC).`;
    if (jobs.status === "fulfilled") showJobs(jobs.value);
    if (audit.status === "fulfilled") showAudit($("audit-jobqueue"), $("audit-jobqueue-note"), { available: true, events: audit.value });
    updated();
  }

  every(DATA.refresh_seconds, refresh);
})();
