// sayna-sip operator console: a thin page over the public ingress API, no framework, no network
// beyond this ingress. Every value from the API is put in the page as text (never as HTML).
"use strict";

const TOKEN_KEY = "sayna-sip-token";
const view = document.getElementById("view");
const errorBox = document.getElementById("error");

// ---- portal: /console#token=… (a tenant token; the fragment never reaches a server) --------
// The token moves to this tab's sessionStorage and leaves the address bar and its history.
(function takePortalToken() {
  const m = /^#token=([A-Za-z0-9._-]+)$/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, m[1]);
  history.replaceState(null, "", `${location.pathname}${location.search}`);
})();

// The host of a tenant token in this tab, or null (an admin token, or none). Read from the
// token itself for display only: the ingress checks every request.
function tenantHost() {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")));
    return claims.aud === "sayna-sip-tenant" && typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}

function applyMode() {
  const host = tenantHost();
  document.body.dataset.mode = host ? "tenant" : "admin";
  const hooksLink = document.querySelector('[data-nav="hooks"]');
  hooksLink.textContent = host ? host : "Hooks";
  hooksLink.href = host ? hookHref(host) : "#/hooks";
  document.querySelector("a.brand").href = hooksLink.href;
}

// ---- DOM helpers -------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const badge = (text, kind) => h("span", { class: `badge ${kind || text}` }, text);
// Times in the reader's zone, with how long ago (the API's UTC instant in the tooltip).
function ago(ms) {
  const s = Math.round((Date.now() - ms) / 1000), a = Math.abs(s);
  const [n, u] = a < 60 ? [a, "s"] : a < 3600 ? [Math.round(a / 60), "min"] : a < 86400 ? [Math.round(a / 3600), "h"] : [Math.round(a / 86400), "d"];
  return s >= 0 ? `${n} ${u} ago` : `in ${n} ${u}`;
}
function fmtTime(t) {
  const d = t ? new Date(t) : null;
  if (!d || Number.isNaN(d.getTime())) return "—";
  return `${d.toLocaleString()} (${ago(d.getTime())})`;
}
const when = (t) => h("time", { datetime: t || null, title: t ? new Date(t).toISOString() : null }, fmtTime(t));
const fmtPct = (r) => (r === null || r === undefined ? "—" : `${(r * 100).toFixed(1)}%`);
const fmtMs = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} ms`);
const hookHref = (host) => `#/hooks/${encodeURIComponent(host)}`;
const deliveryHref = (id) => `#/deliveries/${encodeURIComponent(id)}`;

function render(...nodes) {
  view.replaceChildren(...nodes);
}
function showError(err) {
  // A 401 with no token stored is the token prompt's cue, not an error to show behind it.
  if (err && err.status === 401 && !sessionStorage.getItem(TOKEN_KEY)) err = null;
  if (!err) {
    errorBox.hidden = true;
    errorBox.textContent = "";
    return;
  }
  errorBox.hidden = false;
  errorBox.textContent = err.status ? `${err.status} ${err.code}: ${err.message}` : String(err.message || err);
}

// ---- API ---------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  // Every change is JSON, bodyless ones too: the ingress refuses anything else (CSRF guard).
  if (method !== "GET") headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "unreachable", `the ingress did not answer: ${e.message}`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const code = (data && data.error) || "http_error";
    const message = (data && data.message) || text.slice(0, 300) || res.statusText;
    if (res.status === 401) askToken();
    throw new ApiError(res.status, code, message);
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// ---- token -------------------------------------------------------------------------------
const dialog = document.getElementById("token-dialog");
function askToken() {
  if (!dialog.open) {
    document.getElementById("token-input").value = "";
    dialog.showModal();
  }
}
document.getElementById("token-button").addEventListener("click", askToken);
document.getElementById("token-cancel").addEventListener("click", () => dialog.close());
document.getElementById("token-form").addEventListener("submit", () => {
  const value = document.getElementById("token-input").value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  showError(null); // the 401 that asked for the token is answered
  route();
});

// ---- chart: delivered / failed attempts per time bucket, inline SVG ----------------------
function chart(attempts, hours) {
  const buckets = 24;
  const now = Date.now();
  const span = hours * 3600 * 1000;
  const ok = new Array(buckets).fill(0);
  const bad = new Array(buckets).fill(0);
  for (const a of attempts) {
    const t = Date.parse(a.started_at);
    if (Number.isNaN(t) || t < now - span) continue;
    const i = Math.min(buckets - 1, Math.floor(((t - (now - span)) / span) * buckets));
    if (a.outcome === "delivered") ok[i] += 1;
    else bad[i] += 1;
  }
  const max = Math.max(1, ...ok.map((v, i) => v + bad[i]));
  const W = 480, H = 120, bw = W / buckets;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 16}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  const total = ok.reduce((a, b) => a + b, 0);
  const failed = bad.reduce((a, b) => a + b, 0);
  svg.setAttribute("aria-label", `attempts over ${hours}h: ${total} delivered, ${failed} failed`);
  const rect = (x, y, w, hh, fill) => {
    const r = document.createElementNS(ns, "rect");
    for (const [k, v] of Object.entries({ x, y, width: w, height: hh, fill })) r.setAttribute(k, v);
    svg.append(r);
  };
  ok.forEach((v, i) => {
    const hOk = (v / max) * H, hBad = (bad[i] / max) * H;
    if (v) rect(i * bw + 1, H - hOk, bw - 2, hOk, "#1a7f37");
    if (bad[i]) rect(i * bw + 1, H - hOk - hBad, bw - 2, hBad, "#c62828");
  });
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 2);
  label.setAttribute("y", H + 13);
  label.setAttribute("font-size", "11");
  label.setAttribute("fill", "#5d6677");
  label.textContent = `last ${hours}h · delivered ${total} · failed ${failed}`;
  svg.append(label);
  return svg;
}

// ---- pages -------------------------------------------------------------------------------
function stateBadges(hook, stats) {
  const out = [];
  if (hook.enabled === false) out.push(badge("disabled"));
  else out.push(badge("enabled"));
  if (stats && stats.state === "removed") out.push(" ", badge("removed", "bad"));
  if (hook.failing_since) out.push(" ", badge(`failing since ${fmtTime(hook.failing_since)}`, "failing"));
  return out;
}

function eventsField(value) {
  return h("input", { name: "events", placeholder: "all events", value: value || "", size: 28 });
}

function parseEvents(text) {
  const list = text.split(",").map((s) => s.trim()).filter(Boolean);
  return list.length ? list : null;
}

async function hooksPage() {
  const { hooks } = await api("GET", "/sip/hooks");
  const stats = await Promise.all(
    hooks.map((hk) => api("GET", `/sip/hooks/${encodeURIComponent(hk.host)}/stats?window=24h`).catch(() => null)),
  );
  const shared = h("div", { id: "portal-link" });
  const rows = hooks.map((hk, i) => {
    const st = stats[i];
    return h(
      "tr",
      { dataset: { host: hk.host } },
      h("td", {}, h("a", { href: hookHref(hk.host) }, hk.host)),
      h("td", { class: "url wide" }, hk.url),
      h("td", {}, hk.source),
      h("td", { class: "state" }, stateBadges(hk, st)),
      h("td", { class: "rate" }, st ? fmtPct(st.success_rate) : "—"),
      h("td", { class: "wide" }, st ? fmtMs(st.p99_ms) : "—"),
      h("td", { class: "wide" }, st ? fmtTime(st.last_failure_at) : "—"),
      h(
        "td",
        { class: "row-actions" },
        h("button", { type: "button", class: "share", title: "a 1 h link to this host's portal", onclick: () => sharePortal(hk.host, shared) }, "Share portal link"),
        " ",
        hk.source === "runtime"
          ? h("button", { class: "danger", type: "button", onclick: () => deleteHook(hk.host) }, "Delete")
          : h("span", { class: "muted" }, "config"),
      ),
    );
  });
  const form = h(
    "form",
    { class: "inline", id: "add-hook", onsubmit: addHook },
    h("label", {}, "Host", h("input", { name: "host", required: true, placeholder: "pbx.tenant.example" })),
    h("label", {}, "URL", h("input", { name: "url", required: true, placeholder: "https://…", size: 36 })),
    h("label", {}, "Events (comma-separated)", eventsField("")),
    h("label", {}, "Secret (optional)", h("input", { name: "secret", type: "password", autocomplete: "off" })),
    h("button", { class: "primary", type: "submit" }, "Add hook"),
  );
  render(
    h("h1", {}, "Hooks"),
    shared,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "hooks" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Host", "URL", "Source", "State", "Success 24h", "p99 24h", "Last failure", ""].map((t, i) =>
              h("th", { class: [1, 5, 6].includes(i) ? "wide" : null }, t),
            ),
          ),
        ),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No hooks yet."))),
      ),
    ),
    h("h2", {}, "Add or replace a hook"),
    h("div", { class: "card" }, form),
  );
}

async function addHook(ev) {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const hook = { host: f.get("host").trim(), url: f.get("url").trim() };
  const events = parseEvents(f.get("events") || "");
  if (events) hook.events = events;
  if (f.get("secret")) hook.secret = f.get("secret");
  await act(() => api("POST", "/sip/hooks", { hooks: [hook] }));
}

async function deleteHook(host) {
  if (!confirm(`Delete the runtime hook ${host}?`)) return;
  await act(() => api("DELETE", "/sip/hooks", { hosts: [host] }));
}

async function hookPage(host, params) {
  const enc = encodeURIComponent(host);
  const hook = await api("GET", `/sip/hooks/${enc}`);
  const [stats, recent, history] = await Promise.all([
    api("GET", `/sip/hooks/${enc}/stats?window=24h`).catch((e) => (showError(e), null)),
    api("GET", `/sip/deliveries${query({ host, limit: 200, outcome: params.get("outcome"), cursor: params.get("cursor") })}`).catch((e) => (showError(e), { deliveries: [] })),
    api("GET", `/sip/audit${query({ host, limit: 50 })}`).catch((e) => (showError(e), { records: [] })),
  ]);
  // Outcome is filtered by the API; event type and room on this page of 200.
  const filt = { outcome: params.get("outcome") || "", event: params.get("event") || "", room: params.get("room") || "" };
  const deliveries = (recent.deliveries || recent.items || []).filter(
    (d) => (!filt.event || d.event === filt.event) && (!filt.room || d.room === filt.room),
  );
  const secrets = hook.secrets || [];
  const result = h("div", { id: "action-result" });
  const settings = h(
    "dl",
    { class: "kv" },
    h("dt", {}, "URL"), h("dd", { class: "mono" }, hook.url),
    h("dt", {}, "Source"), h("dd", {}, hook.source),
    h("dt", {}, "State"), h("dd", { id: "hook-state" }, stateBadges(hook, stats)),
    hook.disabled_reason ? [h("dt", {}, "Disabled because"), h("dd", {}, hook.disabled_reason)] : null,
    h("dt", {}, "Events"), h("dd", { id: "hook-events" }, (hook.events || []).join(", ") || "all"),
    h("dt", {}, "Ordering"), h("dd", { id: "hook-ordering" }, hook.ordering || "default (SIP_ORDERING)"),
    h("dt", {}, "Secrets"),
    h(
      "dd",
      { id: "hook-secrets" },
      secrets.length
        ? h("ul", {}, secrets.map((s) => h("li", { class: "mono" }, `${s.fingerprint}`, s.expires_at ? ` (expires ${fmtTime(s.expires_at)})` : "")))
        : h("span", { class: "muted" }, "global secret"),
    ),
  );
  const editEvents =
    hook.source === "runtime"
      ? h(
          "form",
          { class: "inline", id: "edit-events", onsubmit: (ev) => saveEvents(ev, hook) },
          h("label", {}, "Events (comma-separated, empty = all)", eventsField((hook.events || []).join(","))),
          h("button", { type: "submit" }, "Save events"),
        )
      : null;
  const buttons = h(
    "div",
    { class: "actions" },
    h("button", { type: "button", id: "test-send", onclick: () => testSend(host, result) }, "Test send"),
    hook.source === "runtime"
      ? [
          h("button", { type: "button", id: "rotate", onclick: () => rotate(host, result) }, "Rotate secret"),
          hook.enabled === false
            ? h("button", { type: "button", id: "enable", class: "primary", onclick: () => setState(host, "enable") }, "Enable")
            : h("button", { type: "button", id: "disable", class: "danger", onclick: () => setState(host, "disable") }, "Disable"),
        ]
      : null,
  );
  // The list holds route and attempt records (tagged by `kind`); the page shows attempts.
  const attempts = deliveries.filter((d) => d.kind === "attempt");
  render(
    h("h1", {}, host),
    h("div", { class: "card" }, settings, editEvents, buttons, result),
    h("h2", {}, "Endpoints"),
    endpointTable(host, hook.endpoints || [], result),
    h("h2", {}, "Attempts, last 24 h"),
    h(
      "div",
      { class: "card" },
      chart(attempts, 24),
      stats
        ? h("p", { class: "muted", id: "hook-stats" },
            `${stats.attempts} attempts · ${stats.delivered} delivered · ${stats.failed} failed · success ${fmtPct(stats.success_rate)} · p50 ${fmtMs(stats.p50_ms)} · p99 ${fmtMs(stats.p99_ms)}` +
              (stats.rate_limit ? ` · rate limit ${stats.rate_limit}/s, now ${stats.current_rate}/s` : ""))
        : null,
    ),
    h("h2", {}, "Recent deliveries"),
    deliveryFilter(host, filt),
    deliveryTable(attempts),
    recent.next_cursor
      ? h("p", {}, h("a", { id: "older", href: `${hookHref(host)}${query({ ...filt, cursor: recent.next_cursor })}` }, "Older deliveries →"))
      : null,
    h("h2", {}, "History"),
    historyTable(history.records || []),
  );
}

const OUTCOMES = ["", "delivered", "failed", "dead", "blocked"];
function deliveryFilter(host, filt) {
  return h(
    "form",
    { class: "inline", id: "delivery-filter", onsubmit: (ev) => {
      ev.preventDefault();
      const f = new FormData(ev.target);
      location.hash = `${hookHref(host)}${query({ outcome: f.get("outcome"), event: f.get("event").trim(), room: f.get("room").trim() })}`;
    } },
    h("label", {}, "Outcome", h("select", { name: "outcome" }, OUTCOMES.map((o) => h("option", { value: o, selected: o === filt.outcome }, o || "any")))),
    h("label", {}, "Event type", h("input", { name: "event", value: filt.event, placeholder: "participant_joined" })),
    h("label", {}, "Room", h("input", { name: "room", value: filt.room })),
    h("button", { type: "submit" }, "Filter"),
  );
}

// Every endpoint of the host, `default` first: header names only (values never leave KV).
function endpointTable(host, endpoints, result) {
  const enc = encodeURIComponent(host);
  return h(
    "table",
    { id: "endpoints" },
    h("thead", {}, h("tr", {}, ["Id", "URL", "Events", "Headers", "State", ""].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      endpoints.map((e) =>
        h(
          "tr",
          { "data-endpoint": e.id },
          h("td", { class: "mono" }, e.id),
          h("td", { class: "mono" }, e.url),
          h("td", {}, (e.events || []).join(", ") || "all"),
          h("td", { class: "mono endpoint-headers" }, Object.keys(e.headers || {}).join(", ") || "—"),
          h("td", {}, badge(e.enabled === false ? "disabled" : "enabled")),
          h(
            "td",
            {},
            h("button", { type: "button", class: "endpoint-test", onclick: () => testSend(host, result, `endpoints/${encodeURIComponent(e.id)}/`) }, "Test"),
            e.id === "default"
              ? null
              : h("button", { type: "button", class: "danger endpoint-delete", onclick: () => act(() => api("DELETE", `/sip/hooks/${enc}/endpoints/${encodeURIComponent(e.id)}`)) }, "Remove"),
          ),
        ),
      ),
    ),
  );
}


// Who changed what on this hook (GET /sip/audit): never a secret, only field names and safe values.
function historyTable(records) {
  if (!records.length) return h("p", { class: "muted", id: "history" }, "No change recorded.");
  const shown = (r) => Object.entries(r.values || {}).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join(" ");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "history" },
      h("thead", {}, h("tr", {}, ["Time", "Who", "Action", "Fields", "Values", "Request"].map((t, i) => h("th", { class: i > 3 ? "wide" : null }, t)))),
      h(
        "tbody",
        {},
        records.map((r) =>
          h(
            "tr",
            {},
            h("td", {}, fmtTime(r.at)),
            h("td", { class: "mono" }, r.actor),
            h("td", {}, r.action),
            h("td", {}, (r.fields || []).join(", ")),
            h("td", { class: "wide mono" }, shown(r)),
            h("td", { class: "wide mono" }, r.request_id || ""),
          ),
        ),
      ),
    ),
  );
}


// Admin: mint a tenant token for `host` and show its portal link, once.
async function sharePortal(host, box) {
  try {
    const t = await api("POST", `/sip/hooks/${encodeURIComponent(host)}/access-tokens`, { ttl: "1h" });
    const link = `${location.origin}${t.portal_path}`;
    const copy = h("button", { type: "button", class: "copy-link", onclick: () => navigator.clipboard.writeText(link).then(() => (copy.textContent = "Copied")) }, "Copy");
    box.replaceChildren(
      h("div", { class: "secret-once portal-link" }, `Portal link for ${host}, valid until ${fmtTime(t.expires_at)}: `,
        h("code", { class: "mono" }, link), copy),
    );
  } catch (e) {
    showError(e);
  }
}

function deliveryTable(items) {
  if (!items.length) return h("p", { class: "muted", id: "deliveries" }, "No deliveries recorded.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id: "deliveries" },
      h("thead", {}, h("tr", {}, ["Time", "Event id", "Event", "Room", "Attempt", "Outcome", "Status", "Duration"].map((t, i) => h("th", { class: [3, 7].includes(i) ? "wide" : null }, t)))),
      h(
        "tbody",
        {},
        items.map((d) =>
          h(
            "tr",
            {},
            h("td", {}, when(d.started_at || d.at)),
            h("td", { class: "mono" }, h("a", { href: deliveryHref(d.event_id) }, d.event_id)),
            h("td", {}, d.event || ""),
            h("td", { class: "wide" }, d.room || ""),
            h("td", {}, d.attempt ?? ""),
            h("td", {}, d.outcome ? badge(d.outcome) : ""),
            h("td", {}, d.status ?? ""),
            h("td", { class: "wide" }, fmtMs(d.duration_ms)),
          ),
        ),
      ),
    ),
  );
}

async function saveEvents(ev, hook) {
  ev.preventDefault();
  const events = parseEvents(new FormData(ev.target).get("events") || "");
  const body = { host: hook.host, url: hook.url };
  if (events) body.events = events;
  await act(() => api("POST", "/sip/hooks", { hooks: [body] }));
}

async function rotate(host, result) {
  try {
    const ans = await api("POST", `/sip/hooks/${encodeURIComponent(host)}/rotate-secret`, {});
    await route();
    const box = document.getElementById("action-result");
    const value = h("code", { id: "new-secret" }, ans.secret);
    const copy = h("button", { type: "button", id: "copy-secret", onclick: () => navigator.clipboard.writeText(ans.secret).then(() => (copy.textContent = "Copied")) }, "Copy");
    box.replaceChildren(h("div", { class: "secret-once" }, "New secret, shown once: ", value, copy));
  } catch (e) {
    showError(e);
    result.textContent = "";
  }
}

async function setState(host, action) {
  await act(() => api("POST", `/sip/hooks/${encodeURIComponent(host)}/${action}`));
}

async function testSend(host, result, under = "") {
  result.replaceChildren(h("span", { class: "muted" }, "sending…"));
  try {
    const r = await api("POST", `/sip/hooks/${encodeURIComponent(host)}/${under}test`);
    const ok = r.status >= 200 && r.status < 300;
    result.replaceChildren(
      h(
        "div",
        { class: "card", id: "test-result" },
        badge(ok ? "delivered" : "failed"), " ",
        `status ${r.status ?? "—"} · ${fmtMs(r.duration_ms)}`,
        r.error ? h("div", {}, `error: ${r.error}`) : null,
        r.response_excerpt ? h("pre", {}, r.response_excerpt) : null,
      ),
    );
  } catch (e) {
    result.textContent = "";
    showError(e);
  }
}

async function deliveryPage(eventId) {
  const d = await api("GET", `/sip/deliveries/${encodeURIComponent(eventId)}`);
  const r = d.route || {};
  const attempts = d.attempts || [];
  render(
    h("h1", {}, `Delivery ${d.event_id}`),
    h(
      "div",
      { class: "card", id: "route" },
      h(
        "dl",
        { class: "kv" },
        h("dt", {}, "Event"), h("dd", {}, d.event || "—"),
        h("dt", {}, "Room"), h("dd", {}, d.room || "—"),
        h("dt", {}, "Route"), h("dd", {}, r.outcome ? badge(r.outcome, r.outcome === "matched" ? "matched" : "warn") : "—"),
        r.host ? [h("dt", {}, "Host"), h("dd", {}, h("a", { href: hookHref(r.host) }, r.host))] : null,
        r.sip_host ? [h("dt", {}, "SIP host"), h("dd", {}, r.sip_host)] : null,
        r.reason ? [h("dt", {}, "Reason"), h("dd", {}, r.reason)] : null,
        r.at ? [h("dt", {}, "Routed at"), h("dd", {}, fmtTime(r.at))] : null,
        d.next_retry_at ? [h("dt", {}, "Next retry"), h("dd", { id: "next-retry" }, "due ", when(d.next_retry_at))] : null,
      ),
    ),
    resendActions(d),
    h("h2", {}, `Attempts (${attempts.length})`),
    attempts.length
      ? h(
          "ol",
          { class: "timeline", id: "attempts" },
          attempts.map((a, i) =>
            h(
              "li",
              {},
              h("strong", {}, `#${a.attempt} `), badge(a.outcome || "?"), " ",
              `status ${a.status ?? "—"} · ${fmtMs(a.duration_ms)} · ${fmtTime(a.started_at)}`,
              a.url ? h("div", { class: "mono muted" }, a.url) : null,
              a.error ? h("div", {}, `error: ${a.error}`) : null,
              a.retry_at ? h("div", { class: "retry-at" }, "next try due ", when(a.retry_at)) : null,
              a.response ? h("pre", {}, a.response) : null,
              requestHeaders(a.request_headers, i === attempts.length - 1),
            ),
          ),
        )
      : h("p", { class: "muted", id: "attempts" }, "No attempt: the event was not delivered to any hook."),
    h("h2", {}, "Request body"),
    d.body === null || d.body === undefined
      ? h("p", { class: "muted", id: "request-body" }, "No longer stored: the event is past LK_EVENTS_MAX_AGE.")
      : h("pre", { class: "card", id: "request-body" }, pretty(d.body)),
  );
}

// Resend: the event again, with its webhook-id, to the endpoints it went to (a button
// per endpoint when there are several), after a confirmation; the answer stays on screen.
function resendActions(d) {
  const r = d.route || {};
  if (r.outcome !== "matched") return null;
  const gone = d.body === null || d.body === undefined;
  const endpoints = r.endpoints && r.endpoints.length ? r.endpoints : ["default"];
  const result = h("div", { id: "resend-result" });
  const send = async (endpoint) => {
    const to = endpoint ? `endpoint ${endpoint} of ${r.host}` : `${r.host} (${endpoints.join(", ")})`;
    if (!confirm(`Resend event ${d.event_id} to ${to}? It arrives again with the same webhook-id.`)) return;
    try {
      const ans = await api("POST", `/sip/deliveries/${encodeURIComponent(d.event_id)}/resend`, endpoint ? { endpoint } : {});
      showError(null);
      result.replaceChildren(
        h("div", { class: "card" }, badge("queued", "ok"), ` resent to ${ans.host} (${ans.endpoints.join(", ")}) with webhook-id ${ans.event_id}; its attempts show here on reload.`),
      );
    } catch (e) {
      result.textContent = "";
      showError(e);
    }
  };
  const button = (endpoint, label) =>
    h("button", { type: "button", class: "resend", "data-endpoint": endpoint || null, disabled: gone, onclick: () => send(endpoint) }, label);
  const buttons = endpoints.length > 1 ? [...endpoints.map((e) => button(e, `Resend to ${e}`)), button(null, "Resend to all")] : [button(null, "Resend")];
  return h(
    "div",
    {},
    h("div", { class: "actions", id: "resend" }, buttons, gone ? h("span", { class: "muted" }, "Nothing to resend: the body is past LK_EVENTS_MAX_AGE.") : null),
    result,
  );
}

// The headers an attempt sent, as recorded: signatures and custom header values arrive
// redacted from the API. Open for the latest attempt, folded for the earlier ones.
function requestHeaders(headers, open) {
  const names = Object.keys(headers || {});
  if (!names.length) return null;
  return h(
    "details",
    { class: "request-headers", open },
    h("summary", {}, `Request headers (${names.length})`),
    h("pre", {}, names.map((n) => `${n}: ${headers[n]}`).join("\n")),
  );
}

// JSON bodies indented for reading; anything else as it came.
function pretty(body) {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

async function deadLettersPage(params) {
  const filters = { host: params.get("host") || "", since: params.get("since") || "", until: params.get("until") || "" };
  const ans = await api("GET", `/sip/dead-letters${query({ ...filters, limit: 200, cursor: params.get("cursor") })}`);
  const letters = ans.dead_letters || ans.items || [];
  const form = h(
    "form",
    { class: "inline", id: "dead-filter", onsubmit: (ev) => {
      ev.preventDefault();
      const f = new FormData(ev.target);
      location.hash = `#/dead-letters${query({ host: f.get("host"), since: f.get("since"), until: f.get("until") })}`;
    } },
    tenantHost() ? null : h("label", {}, "Host", h("input", { name: "host", value: filters.host })),
    h("label", {}, "Since (1h or RFC 3339)", h("input", { name: "since", value: filters.since })),
    h("label", {}, "Until", h("input", { name: "until", value: filters.until })),
    h("button", { type: "submit" }, "Filter"),
  );
  const checks = [];
  const selectAll = h("input", { type: "checkbox", id: "select-all", "aria-label": "select all shown", onchange: () => {
    for (const c of checks) c.checked = selectAll.checked;
  } });
  const rows = letters.map((l) => {
    const box = h("input", { type: "checkbox", value: l.event_id, "aria-label": `select ${l.event_id}` });
    checks.push(box);
    return h(
      "tr",
      {},
      h("td", {}, box),
      h("td", { class: "wide" }, when(l.dead_at || l.at)),
      h("td", {}, h("a", { href: hookHref(l.host) }, l.host)),
      h("td", { class: "wide" }, l.event || ""),
      h("td", { class: "mono" }, h("a", { href: deliveryHref(l.event_id) }, l.event_id)),
      h("td", { class: "reason" }, l.reason || ""),
      h("td", { class: "wide" }, l.attempts ?? ""),
      h("td", { class: "wide" }, l.last_status ?? ""),
    );
  });
  const result = h("p", { id: "redrive-result", class: "muted" });
  const redrive = async (body) => {
    try {
      const r = await api("POST", "/sip/dead-letters/redrive", body);
      await route();
      document.getElementById("redrive-result").textContent = `redriven ${r.redriven ?? 0}, skipped ${r.skipped ?? 0}`;
    } catch (e) {
      showError(e);
    }
  };
  render(
    h("h1", {}, "Dead letters"),
    h("div", { class: "card" }, form),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", id: "redrive-selected", onclick: () => {
        const ids = checks.filter((c) => c.checked).map((c) => c.value);
        if (ids.length) redrive({ event_ids: ids });
      } }, "Redrive selected"),
      // The letters on screen, by id: a filter would also take letters beyond the page's 200.
      h("button", { type: "button", id: "redrive-all", disabled: !letters.length, onclick: () => redrive({ ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)), event_ids: [...new Set(letters.map((l) => l.event_id))] }) }, `Redrive all shown (${letters.length})`),
    ),
    result,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "dead-letters" },
        h("thead", {}, h("tr", {}, ["", "Dead at", "Host", "Event", "Event id", "Reason", "Attempts", "Last status"].map((t, i) => h("th", { class: [1, 3, 6, 7].includes(i) ? "wide" : null }, i === 0 ? selectAll : t)))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No dead letters."))),
      ),
    ),
    ans.next_cursor
      ? h("p", {}, h("a", { id: "older", href: `#/dead-letters${query({ ...filters, cursor: ans.next_cursor })}` }, "Older dead letters →"))
      : null,
  );
}

// ---- routing -----------------------------------------------------------------------------
async function act(fn) {
  try {
    await fn();
    showError(null);
    await route();
  } catch (e) {
    showError(e);
  }
}

async function route() {
  applyMode();
  const tenant = tenantHost();
  let hash = location.hash || (tenant ? hookHref(tenant) : "#/hooks");
  let [path, qs] = hash.slice(1).split("?");
  let parts;
  try {
    parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    // A malformed %-escape (a hand-edited or cut address): say so rather than go blank.
    render(h("h1", {}, "This address cannot be read"), h("p", { class: "muted" }, "See the error above."));
    showError(new ApiError(0, "bad_address", `the address has a malformed %-escape: ${hash.slice(0, 120)}`));
    document.body.dataset.ready = hash;
    return;
  }
  if (tenant && parts[0] === "hooks" && parts[1] && parts[1] !== tenant) {
    // A portal shows one host: another one's address (typed or pasted) goes to its own.
    hash = hookHref(tenant);
    history.replaceState(null, "", `${location.pathname}${location.search}${hash}`);
    [path, qs] = hash.slice(1).split("?");
    parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  }
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === parts[0]));
  try {
    if (parts[0] === "hooks" && (parts[1] || tenant)) await hookPage(parts[1] || tenant, new URLSearchParams(qs || ""));
    else if (parts[0] === "deliveries" && parts[1]) await deliveryPage(parts[1]);
    else if (parts[0] === "dead-letters") await deadLettersPage(new URLSearchParams(qs || ""));
    else await hooksPage();
    document.body.dataset.ready = hash;
  } catch (e) {
    render(h("h1", {}, "Could not load this page"), h("p", { class: "muted" }, "See the error above."));
    showError(e);
    document.body.dataset.ready = hash;
  }
}

document.getElementById("find").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = document.getElementById("find-id").value.trim();
  if (id) location.hash = deliveryHref(id);
});
// Live: the page reloads its data every 5 s, unless the reader is typing or asked for a token.
const LIVE_KEY = "sayna-sip-live";
const live = document.getElementById("live");
live.checked = sessionStorage.getItem(LIVE_KEY) === "1";
live.addEventListener("change", () => sessionStorage.setItem(LIVE_KEY, live.checked ? "1" : "0"));
setInterval(() => {
  const typing = document.activeElement && document.activeElement.matches("main input, main select, main textarea");
  const shown = document.getElementById("action-result"); // a one-time secret, a test result
  if (live.checked && !dialog.open && !typing && !(shown && shown.childNodes.length)) route();
}, 5000);

// The search box shows the delivery on screen, never one looked at before.
function syncFind() {
  const m = (location.hash || "").match(/^#\/deliveries\/([^?]+)/);
  document.getElementById("find-id").value = m ? decodeURIComponent(m[1]) : "";
}
window.addEventListener("hashchange", () => {
  showError(null);
  syncFind();
  route();
});
syncFind();
route();
