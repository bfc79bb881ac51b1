// The dashboard: renders whatever views the plugins declare, from one
// server-sent events stream. Every value is set with textContent, never as
// HTML: event and customer names come from orders.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function renderHealth(h) {
  const ready = $("ready");
  ready.textContent = h.ready ? "ready" : "not ready";
  ready.dataset.state = h.ready ? "ok" : "bad";
  const paused = $("paused");
  paused.hidden = !h.paused;
  paused.textContent = h.paused ? "Paused: " + h.paused + " (since " + new Date(h.paused_since).toLocaleTimeString() + ")" : "";
  $("health").dataset.paused = h.paused || "";
  const dl = $("deadletters");
  dl.textContent = h.dead_letters < 0 ? "dead letters: ?" : "dead letters waiting: " + h.dead_letters;
  dl.dataset.state = h.dead_letters === 0 ? "ok" : "warn";
  dl.dataset.value = h.dead_letters;
  $("plugins").replaceChildren(...(h.plugins || []).map((p) =>
    el("li", { "data-plugin": p.name, "data-up": String(p.up), text: p.name + (p.up ? " up" : " down") })));
}

function histogram(h) {
  if (!h.per_key) {
    const values = h.series.length ? h.series[0].values : h.buckets.map(() => 0);
    const top = Math.max(1, ...values);
    const chart = el("div", { class: "chart" });
    const axis = el("div", { class: "axis" });
    values.forEach((v, i) => {
      const bar = el("div", { class: "bar", "data-bucket": h.buckets[i], "data-value": String(v), title: h.buckets[i] + ": " + v });
      bar.style.height = (Math.max(0, v) / top * 100) + "%";
      chart.append(el("div", { class: "col" }, bar));
      axis.append(el("span", { text: i % 3 === 0 ? h.buckets[i] : "" }));
    });
    return [chart, axis];
  }
  if (!h.series.length) return [el("p", { class: "empty", text: "none yet" })];
  const grid = el("div", { class: "series" });
  for (const s of h.series) {
    const top = Math.max(1, ...s.values);
    const spark = el("div", { class: "spark", "data-series": s.name, "data-total": String(s.total) });
    s.values.forEach((v, i) => {
      const bar = el("div", { class: "bar", "data-bucket": h.buckets[i], "data-value": String(v), title: h.buckets[i] + ": " + v });
      bar.style.height = (Math.max(0, v) / top * 100) + "%";
      spark.append(bar);
    });
    grid.append(el("div", { class: "name", text: s.name, title: s.name }), spark, el("div", { class: "total", text: String(s.total) }));
  }
  return [el("div", { class: "scroll" }, grid)];
}

function table(t) {
  if (!t.rows.length) return [el("p", { class: "empty", text: "none yet" })];
  const head = el("tr", {}, el("th", { text: t.row_label }), ...t.columns.map((c) => el("th", { class: "num", text: c })));
  const rows = t.rows.map((r) => el("tr", { "data-row": r.name }, el("td", { text: r.name }),
    ...r.texts.map((x, i) => el("td", { class: "num", "data-column": t.columns[i], text: x }))));
  const total = el("tr", { class: "total", "data-row": "TOTAL" }, el("td", { text: "TOTAL" }),
    ...t.total.map((x, i) => el("td", { class: "num", "data-column": t.columns[i], text: x })));
  return [el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows, total)))];
}

function leaderboard(l) {
  if (!l.leaders.length) return [el("p", { class: "empty", text: "none yet" })];
  const head = el("tr", {}, el("th", { class: "num", text: "#" }), el("th", { text: l.member_label }), el("th", { class: "num", text: l.score_label }));
  const rows = l.leaders.map((e, i) => el("tr", { "data-row": e.member },
    el("td", { class: "num", text: String(i + 1) }), el("td", { text: e.member }), el("td", { class: "num", "data-column": l.score_label, text: e.text })));
  return [el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)), el("p", { class: "by", text: "top " + l.leaders.length + " of " + l.members })];
}

function keyCount(k) {
  if (!k.sizes.length) return [el("p", { class: "empty", text: "none yet" })];
  const head = el("tr", {}, el("th", { class: "num", text: k.size_label }), el("th", { class: "num", text: k.keys_label }));
  const rows = k.sizes.map((s) => el("tr", { "data-row": String(s.size) },
    el("td", { class: "num", text: String(s.size) }), el("td", { class: "num", "data-column": k.keys_label, text: String(s.keys) })));
  return [el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)),
    el("p", { class: "by", "data-keys": String(k.keys), text: "total " + k.keys_label.toLowerCase() + ": " + k.keys })];
}

function renderViews(snapshot) {
  const cards = [];
  for (const p of (snapshot && snapshot.plugins) || []) {
    p.views.forEach((v, i) => {
      let body, kind;
      if (v.error) { kind = "error"; body = [el("p", { class: "err", text: "cannot be read: " + v.error })]; }
      else if (v.histogram) { kind = "histogram"; body = histogram(v.histogram); }
      else if (v.table) { kind = "table"; body = table(v.table); }
      else if (v.leaderboard) { kind = "leaderboard"; body = leaderboard(v.leaderboard); }
      else if (v.key_count) { kind = "key_count"; body = keyCount(v.key_count); }
      else return;
      cards.push(el("section", { class: "view", "data-plugin": p.name, "data-view": String(i), "data-kind": kind },
        el("h2", { text: v.title }), el("div", { class: "by", text: p.name }), ...body));
    });
  }
  $("views").replaceChildren(...cards);
}

function connect() {
  const conn = $("conn");
  const es = new EventSource("events");
  es.onopen = () => { conn.textContent = "live"; conn.dataset.state = "ok"; };
  es.onerror = () => { conn.textContent = "reconnecting…"; conn.dataset.state = "bad"; };
  es.onmessage = (m) => {
    const u = JSON.parse(m.data);
    renderHealth(u.health);
    renderViews(u.views);
    const err = $("error");
    err.hidden = !u.error;
    err.textContent = u.error || "";
    $("updated").textContent = "updated " + new Date(u.time).toLocaleTimeString();
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  };
}

connect();
