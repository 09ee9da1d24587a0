// The registry's page (templates/registry.html): a workspace's datasets, their versions and
// browser uploads (the CLI's chunked protocol), and its images (by reference or an uploaded
// archive). Every state-changing request carries the page's XSRF token in X-XSRF-Token
// (flightbase/service/xsrf.py). Tables are filled with text nodes, never HTML built from data.
(function () {
  "use strict";
  const page = document.getElementById("flightbase-page");
  const DATA = JSON.parse(document.getElementById("flightbase-data").textContent);
  const API = DATA.api;
  const XSRF = page.dataset.xsrf;  // echoed on every state-changing request (the server checks it against its cookie)
  const CHUNK = 32 * 1024 * 1024;
  const $ = (id) => document.getElementById(id);
  if (!$("ws") || !DATA.workspaces.length) return;

  async function api(method, path, body, raw, contentType) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") init.headers["X-XSRF-Token"] = XSRF;
    if (raw !== undefined) { init.body = raw; init.headers["Content-Type"] = contentType || "application/octet-stream"; }
    else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    const resp = await fetch(API + path, init);
    if (resp.status === 204) return null;
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) throw new Error((data && data.field ? data.field + ": " : "") + ((data && data.message) || "HTTP " + resp.status));
    return data;
  }

  // el("td", {class: "x"}, "text", node...)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
    return node;
  }
  const human = (n) => n == null ? "–" : n > 1e9 ? (n / 1e9).toFixed(2) + " GB" : n > 1e6 ? (n / 1e6).toFixed(1) + " MB"
    : n > 1e4 ? (n / 1e3).toFixed(1) + " kB" : n + " B";
  const when = (iso) => iso ? new Date(iso).toLocaleString([], { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) : "–";
  const enc = encodeURIComponent;
  function say(node, message, problem) {
    node.textContent = message;
    node.className = "small" + (problem ? " text-danger err" : "");
  }
  function empty(tbody, columns, message) {
    tbody.append(el("tr", {}, el("td", { colspan: columns, class: "text-body-secondary" }, message)));
  }

  // -- reading ---------------------------------------------------------------------------------
  const workspace = () => $("ws").value;
  const open = new Set();  // datasets whose versions are shown

  // a dataset's versions, as a row under it (read before the table is replaced: no flicker on refresh)
  async function versionsRow(ws, d) {
    const cell = el("td", { colspan: 7, class: "bg-body-tertiary" });
    const row = el("tr", { class: "fb-versions", "data-dataset": d.name }, cell);
    let versions;
    try { versions = await api("GET", `/workspaces/${enc(ws)}/datasets/${enc(d.name)}/versions`); }
    catch (e) { say(cell, e.message, true); return row; }
    const body = el("tbody");
    for (const v of versions.slice().sort((a, b) => b.version - a.version)) {  // newest first
      const base = `${API}/workspaces/${enc(ws)}/datasets/${enc(d.name)}/versions/${v.version}`;
      body.append(el("tr", {},
        el("td", {}, "v" + v.version), el("td", {}, v.file_count), el("td", {}, human(v.size_bytes)),
        el("td", {}, v.message), el("td", {}, v.created_by), el("td", {}, when(v.created_at)),
        el("td", {}, v.in_use_by.length ? el("span", { class: "badge text-bg-warning", title: v.in_use_by.join(", ") },
                                                `in use by ${v.in_use_by.length} job(s)`) : ""),
        el("td", {}, el("a", { href: `${base}/archive`, class: "link-secondary" }, "download (tar)"))));
    }
    if (!versions.length) empty(body, 8, "no version yet");
    cell.append(el("table", { class: "table table-sm mb-0 small" },
      el("thead", {}, el("tr", {}, ...["Version", "Files", "Size", "Message", "By", "Created", "", ""].map(h => el("th", {}, h)))),
      body));
    return row;
  }

  async function refresh() {
    const ws = workspace();
    if (!ws) return;
    try {
      const [ds, imgs, st] = await Promise.all([
        api("GET", `/workspaces/${enc(ws)}/datasets`), api("GET", `/workspaces/${enc(ws)}/images`),
        api("GET", `/workspaces/${enc(ws)}/storage`)]);
      if (ws !== workspace()) return;  // another workspace was chosen meanwhile
      const body = $("datasets").querySelector("tbody");
      const rows = [];
      for (const d of ds) {
        const shown = open.has(d.name);
        const toggle = el("button", { type: "button", class: "btn btn-link btn-sm p-0 fb-toggle", "aria-expanded": String(shown),
                                      onclick: () => { shown ? open.delete(d.name) : open.add(d.name); refresh(); } },
                          shown ? "hide versions" : "versions");
        rows.push(el("tr", { "data-dataset": d.name },
          el("td", { class: "fw-semibold" }, d.name), el("td", {}, d.latest_version == null ? "–" : "v" + d.latest_version),
          el("td", {}, d.versions), el("td", {}, human(d.size_bytes)), el("td", {}, d.description),
          el("td", {}, d.created_by), el("td", { class: "text-end" }, toggle)));
        if (shown) rows.push(await versionsRow(ws, d));
      }
      body.replaceChildren(...rows);
      if (!ds.length) empty(body, 7, "no dataset yet: upload one below");
      $("datasets-count").textContent = `${ds.length} dataset${ds.length === 1 ? "" : "s"}`;
      $("dataset-names").replaceChildren(...ds.map(d => el("option", { value: d.name })));

      const ibody = $("images").querySelector("tbody");
      ibody.replaceChildren(...imgs.map(i => el("tr", {},
        el("td", { class: "fw-semibold" }, i.name), el("td", { class: "fb-mono text-break" }, i.reference),
        el("td", {}, i.frameworks.join(", ")), el("td", { class: "small text-body-secondary" }, i.runs_as),
        el("td", {}, el("span", { class: "badge " + (i.builtin ? "text-bg-secondary" : "text-bg-info") }, i.source)),
        el("td", {}, i.size_bytes == null ? "–" : human(i.size_bytes)), el("td", {}, i.created_by))));
      if (!imgs.length) empty(ibody, 7, "no image yet");
      $("runsas").textContent = imgs.length ? "In this deployment an image runs as: " + imgs[0].runs_as : "";

      $("usage").textContent = `${human(st.used_bytes)} used` + (st.quota_bytes ? ` of ${human(st.quota_bytes)}` : " (no quota)");
      $("usage-detail").textContent = `datasets ${human(st.datasets_bytes)}, images ${human(st.images_bytes)}` +
        (st.reserved_bytes ? `, ${human(st.reserved_bytes)} held by uploads in progress` : "");
      const share = st.quota_bytes ? Math.min(100, 100 * (st.used_bytes + st.reserved_bytes) / st.quota_bytes) : 0;
      $("usage-bar").style.width = share.toFixed(1) + "%";
      $("usage-bar").className = "progress-bar " + (share > 90 ? "bg-danger" : share > 75 ? "bg-warning" : "bg-info");
    } catch (e) { say($("status"), e.message, true); }
  }

  // -- dataset uploads (as the CLI's cli_datasets) -------------------------------------------------
  async function sha256(file) {
    // the browser hashes whole files in memory: only small files declare a checksum (the server hashes every file anyway)
    if (file.size > 256 * 1024 * 1024) return null;
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest)).map(b => b.toString(16).padStart(2, "0")).join("");
  }

  // Where an upload's chunks go (as the CLI's cli_datasets.Route): the registry's data endpoint with a
  // ticket from the API when it has one and this browser reaches it, else PATCH through the API.
  class Route {
    constructor(path) { this.path = path; this.direct = null; }
    async ticket() {
      try { this.direct = await api("POST", `${this.path}/direct`); } catch (e) { this.direct = null; }
    }
    async send(i, offset, blob) {
      for (let attempt = 0; this.direct && attempt < 2; attempt++) {
        let resp;
        try {
          resp = await fetch(`${this.direct.url}/files/${i}?offset=${offset}`, {
            method: "PATCH", body: blob,
            headers: { "Authorization": "Bearer " + this.direct.token, "Content-Type": "application/octet-stream" } });
        } catch (e) { this.direct = null; break; }  // not reachable from here: through the API
        const data = await resp.json();
        if (resp.ok) return data;
        if (resp.status === 401 && attempt === 0) { await this.ticket(); continue; }
        throw new Error((data.field ? data.field + ": " : "") + data.message);
      }
      // through the API, from wherever the service says the file now ends
      const state = await api("GET", this.path);
      const at = state.files[i].offset;
      if (at >= offset + blob.size) return state.files[i];
      return api("PATCH", `${this.path}/files/${i}?offset=${at}`, undefined, blob.slice(at - offset));
    }
  }

  async function upload() {
    const ws = workspace(), name = $("dsname").value.trim();
    const files = [...$("files").files, ...$("folder").files];
    const status = $("status");
    say(status, "");
    if (!name || !files.length) { say(status, "name a dataset and choose files", true); return; }
    $("upload").disabled = true;
    try {
      try { await api("GET", `/workspaces/${enc(ws)}/datasets/${enc(name)}`); }
      catch (e) { await api("POST", `/workspaces/${enc(ws)}/datasets`, { name }); }
      const extract = $("extract").checked;
      const decl = [];
      for (const f of files) {
        const path = f.webkitRelativePath || f.name;
        decl.push({ path, size: f.size, sha256: await sha256(f), extract: extract && /\.(zip|tar\.gz|tgz|tar)$/i.test(path) });
      }
      const base = `/workspaces/${enc(ws)}/datasets/${enc(name)}/uploads`;
      const up = await api("POST", base, { files: decl });
      const route = new Route(`${base}/${up.id}`);
      await route.ticket();
      const total = up.total_bytes || 1; let sent = 0;
      for (const [i, f] of files.entries()) {
        let offset = up.files[i].offset;
        while (offset < f.size) {
          const end = Math.min(offset + CHUNK, f.size);
          const r = await route.send(i, offset, f.slice(offset, end));
          sent += r.offset - offset; offset = r.offset;
          $("progress").value = sent / total; say(status, `${human(sent)} of ${human(total)}`);
        }
      }
      const v = await api("POST", `${base}/${up.id}/commit`);
      say(status, `version ${v.version} of ${name}: ${v.file_count} files, ${human(v.size_bytes)}`);
      $("progress").value = 1;
      open.add(name);
      refresh();
    } catch (e) { say(status, e.message, true); }
    finally { $("upload").disabled = false; }
  }

  // -- images --------------------------------------------------------------------------------------
  async function register() {
    const status = $("image-status");
    const name = $("image-name").value.trim(), reference = $("image-reference").value.trim();
    const frameworks = $("image-frameworks").value.split(",").map(s => s.trim()).filter(Boolean);
    if (!name || !reference) { say(status, "name the image and give its reference", true); return; }
    try {
      const image = await api("POST", `/workspaces/${enc(workspace())}/images`, { name, reference, frameworks });
      say(status, `registered ${image.name} (${image.reference})`);
      $("image-name").value = $("image-reference").value = $("image-frameworks").value = "";
      refresh();
    } catch (e) { say(status, e.message, true); }
  }

  async function uploadArchive() {
    const status = $("image-status");
    const name = $("archive-name").value.trim(), tag = $("archive-tag").value.trim() || "latest";
    const file = $("archive").files[0];
    if (!name || !file) { say(status, "name the image and choose its archive", true); return; }
    $("archive-upload").disabled = true;
    say(status, `uploading ${human(file.size)}…`);
    try {
      const image = await api("POST", `/workspaces/${enc(workspace())}/images/upload?name=${enc(name)}&tag=${enc(tag)}`,
                              undefined, file, "application/x-tar");
      say(status, `uploaded ${image.name}: ${image.reference}`);
      $("archive-name").value = $("archive-tag").value = "";
      $("archive").value = "";
      refresh();
    } catch (e) { say(status, e.message, true); }
    finally { $("archive-upload").disabled = false; }
  }

  // -- wiring --------------------------------------------------------------------------------------
  $("ws").addEventListener("change", () => {
    open.clear();
    const url = new URL(window.location.href);
    url.searchParams.set("workspace", workspace());
    window.history.replaceState(null, "", url);
    const dash = $("dashboard-link");
    if (dash) dash.href = `${DATA.links.dashboard}?workspace=${enc(workspace())}`;
    refresh();
  });
  $("workspace-form").addEventListener("submit", (e) => e.preventDefault());
  $("upload").addEventListener("click", upload);
  $("image-register").addEventListener("click", register);
  if ($("archive-upload")) $("archive-upload").addEventListener("click", uploadArchive);
  refresh();
})();
