// What the dashboards compute from the usage API's rows (GET /api/v1/usage): pure functions,
// no DOM, so that tests run them in Node (tests/pages/test_charts.py). In the browser they
// are window.FlightbaseCharts; in Node, module.exports.
(function (root) {
  "use strict";

  const DAY_MS = 24 * 3600 * 1000;

  // The UTC days of a window: `days` of them, ending with `today` ("YYYY-MM-DD").
  function dayLabels(today, days) {
    const end = Date.parse(today + "T00:00:00Z");
    const out = [];
    for (let i = days - 1; i >= 0; i--) out.push(new Date(end - i * DAY_MS).toISOString().slice(0, 10));
    return out;
  }

  // GPU-hours per day stacked by member: rows of group_by=day,user -> one series per member
  // (members in name order, days without usage 0), plus the window's total.
  function usageSeries(rows, today, days) {
    const labels = dayLabels(today, days || 30);
    const index = new Map(labels.map((d, i) => [d, i]));
    const byUser = new Map();
    let total = 0;
    for (const row of rows || []) {
      const i = index.get(row.day);
      if (i === undefined || !row.user) continue;
      if (!byUser.has(row.user)) byUser.set(row.user, labels.map(() => 0));
      byUser.get(row.user)[i] += row.gpu_hours;
      total += row.gpu_hours;
    }
    const datasets = [...byUser.keys()].sort().map(user => ({
      label: user, data: byUser.get(user).map(h => Math.round(h * 1000) / 1000)
    }));
    return { labels, datasets, total: Math.round(total * 1000) / 1000 };
  }

  // GPU-hours per workspace from rows of group_by=workspace.
  function hoursByWorkspace(rows) {
    const out = {};
    for (const row of rows || []) if (row.workspace) out[row.workspace] = (out[row.workspace] || 0) + row.gpu_hours;
    return out;
  }

  // The Monday (UTC) of the week of `today` ("YYYY-MM-DD"): "this week" starts there.
  function weekStart(today) {
    const t = new Date(today + "T00:00:00Z");
    const back = (t.getUTCDay() + 6) % 7;
    return new Date(t.getTime() - back * DAY_MS).toISOString().slice(0, 10);
  }

  const api = { dayLabels, usageSeries, hoursByWorkspace, weekStart };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.FlightbaseCharts = api;
})(this);
