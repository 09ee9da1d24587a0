// What both jobqueue pages share: the page's data, the API helper (the service's XSRF token
// on every state-changing request, as flightbase/service/xsrf.py requires), formatting, and
// filling tables with text (never HTML built from data).
(function () {
  "use strict";
  const page = document.getElementById("flightbase-page");
  const DATA = JSON.parse(document.getElementById("flightbase-data").textContent);
  const XSRF = page.dataset.xsrf;

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.field ? body.field + ": " : "") + ((body && body.message) || "HTTP " + status));
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") init.headers["X-XSRF-Token"] = XSRF;
    if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    const resp = await fetch(DATA.api + path, init);
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  const fmt = {
    duration(s) {
      if (s == null) return "–";
      s = Math.max(0, Math.round(s));
      if (s < 120) return s + " s";
      if (s < 7200) return Math.round(s / 60) + " min";
      if (s < 172800) return (s / 3600).toFixed(1) + " h";
      return (s / 86400).toFixed(1) + " d";
    },
    bytes(n) {
      if (n == null) return "–";
      const units = ["B", "kB", "MB", "GB", "TB"];
      let i = 0;
      while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
      return (i ? n.toFixed(n < 10 ? 2 : 1) : String(n)) + " " + units[i];
    },
    time(epoch) {
      if (epoch == null) return "–";
      return new Date(epoch * 1000).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    },
    percent(p) { return p == null ? "–" : Math.round(p) + " %"; },
    hours(h) { return h == null ? "–" : (h > 0 && h < 0.005 ? "< 0.01" : (Math.round(h * 100) / 100).toString()); },
  };

  // el("td", {class: "x", dataset: {job: id}}, "text", node...)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child == null) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Replace a table's body: rows are <tr> nodes; none gives one "empty" row.
  function fill(table, rows, empty) {
    const body = table.querySelector("tbody");
    const columns = table.querySelectorAll("thead th").length;
    body.replaceChildren(...rows);
    if (!rows.length) body.appendChild(el("tr", { class: "fb-empty" }, el("td", { colspan: columns, class: "text-body-secondary" }, empty || "none")));
  }

  const STATE_CLASS = { running: "success", starting: "info", queued: "secondary", preempted: "warning",
                        succeeded: "success", failed: "danger", cancelled: "dark" };
  function badge(state) {
    return el("span", { class: "badge text-bg-" + (STATE_CLASS[state] || "secondary") }, state);
  }

  function problem(message) {
    const box = document.getElementById("problem");
    if (!box) return;
    box.textContent = message || "";
    box.classList.toggle("d-none", !message);
  }

  function updated() {
    const at = document.getElementById("updated");
    if (at) at.textContent = "updated " + new Date().toLocaleTimeString();
  }

  // Call `refresh` now and every `seconds` (not while the tab is hidden).
  function every(seconds, refresh) {
    const run = () => { if (!document.hidden) refresh(); };
    refresh();
    return setInterval(run, seconds * 1000);
  }

  window.Flightbase = { DATA, api, ApiError, fmt, el, fill, badge, problem, updated, every };
})();
