// The zones editor's forms and network (zones.html): loads the device's applied
// config, lists the polygons with each zone's rules, the required zones and the
// day/night profiles, takes a live picture, pushes the config and polls until
// the device's ack says applied or refused. Drawing is zones_canvas.js.
// Everything from the server is set as text, never as HTML.
(function () {
  "use strict";
  var root = document.getElementById("zones");
  if (!root || !window.XLZoneSurface) return;
  var $ = function (id) { return document.getElementById(id); };
  var T = $("zn-texts").dataset;
  var device = root.getAttribute("data-device");
  var csrf = root.getAttribute("data-csrf");
  var editable = root.getAttribute("data-edit") === "1";
  var POLL_MS = 1000, GIVE_UP_MS = 120000;
  // Zone keys the editor has fields for; any other key of a loaded zone is kept as it was.
  var ZONE_KEYS = ["name", "polygon", "kinds", "inertia_s", "loiter_s"];
  var PROFILES = ["day", "night"];

  var model = { polys: [], selected: -1, point: -1, drawing: -1 };
  var profilesKept = {}; // the loaded profiles, so keys without a field (confirm_hits, zones) survive a push
  var pfInherit = { day: true, night: true };

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (all, k) { return values[k] === undefined ? all : String(values[k]); });
  }
  function fmt(ms) {
    // As the server's fmt_time: MM-DD HH:MM:SS in the county's zone (sv-SE writes ISO order).
    return ms ? new Date(ms).toLocaleString("sv-SE", { hour12: false, timeZone: "Asia/Shanghai" }).slice(5) : "—";
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function status(id, text, cls) {
    var s = $(id);
    if (!s) return;
    s.textContent = text;
    s.className = "zn-status" + (cls ? " " + cls : "");
  }
  function api(method, url, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(url, opts).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) throw new Error(data.detail || "HTTP " + resp.status);
        return data;
      });
    });
  }

  function newZone(kind) {
    var poly = { kind: kind, points: [], closed: false, extra: {} };
    if (kind === "zone") {
      var used = {}, n = 1;
      model.polys.forEach(function (p) { used[p.name] = 1; });
      while (used[T.zonePrefix + n]) n++;
      poly.name = T.zonePrefix + n;
      poly.kinds = ["person"];
      poly.inertia_s = 1;
      poly.loiter_s = 0;
      poly.required = false;
      poly.pf = { day: false, night: false };
    }
    return poly;
  }

  var surface = new window.XLZoneSurface.Surface($("zn-canvas"), model, {
    newKind: function () {
      var r = document.querySelector("input[name=zn-new-kind]:checked");
      return r ? r.value : "zone";
    },
    create: newZone,
    changed: function (what) {
      renderList();
      renderRequired();
      if (what === "closed") {
        status("zn-push-status", T.closed, "");
        var name = document.querySelector(".zn-item.on input.zn-name");
        if (name) name.focus();
      }
    },
  });
  surface.editable = editable;

  // -- the list of polygons and each zone's rules ------------------------------------

  function field(label, input) {
    var l = el("label", {}, label + " ");
    l.appendChild(input);
    return l;
  }

  function renderList() {
    var list = $("zn-list");
    list.textContent = "";
    if (!model.polys.length) { list.appendChild(el("p", { "class": "dim" }, T.noZones)); return; }
    model.polys.forEach(function (poly, i) {
      var item = el("div", { "class": "zn-item" + (i === model.selected ? " on" : ""), "data-index": String(i), "data-kind": poly.kind });
      item.style.borderLeftColor = poly.kind === "mask" ? "#111827" : window.XLZoneSurface.colour(model, i);
      item.addEventListener("mousedown", function () {
        if (model.selected !== i) { model.selected = i; model.point = -1; surface.draw(); markSelected(); }
      });
      var kind = el("select", { "class": "zn-kind" });
      [["zone", T.zone], ["mask", T.mask]].forEach(function (o) {
        var opt = el("option", { value: o[0] }, o[1]);
        if (o[0] === poly.kind) opt.selected = true;
        kind.appendChild(opt);
      });
      kind.disabled = !editable;
      kind.addEventListener("change", function () {
        var fresh = newZone(kind.value);
        fresh.points = poly.points; fresh.closed = poly.closed;
        model.polys[i] = fresh;
        renderList(); renderRequired(); surface.draw();
      });
      item.appendChild(kind);
      if (!poly.closed) item.appendChild(el("span", { "class": "warn" }, T.open));
      if (poly.kind === "zone") {
        var name = el("input", { type: "text", "class": "zn-name", maxlength: "24", value: poly.name || "" });
        name.addEventListener("input", function () { poly.name = name.value.trim(); renderRequired(); surface.draw(); });
        item.appendChild(field(T.name, name));
        var kinds = el("span", { "class": "zn-kinds" }, T.kinds + " ");
        ["person", "motion"].forEach(function (k) {
          var box = el("input", { type: "checkbox", "class": "zn-kind-" + k });
          box.checked = (poly.kinds || []).indexOf(k) >= 0;
          box.addEventListener("change", function () {
            poly.kinds = ["person", "motion"].filter(function (x) { return item.querySelector(".zn-kind-" + x).checked; });
          });
          var l = el("label", {}, null);
          l.appendChild(box);
          l.appendChild(document.createTextNode(T[k]));
          kinds.appendChild(l);
        });
        item.appendChild(kinds);
        [["inertia_s", T.inertia, "0.5"], ["loiter_s", T.loiter, "5"]].forEach(function (f) {
          var num = el("input", { type: "number", min: "0", step: f[2], "class": "zn-" + f[0], value: String(poly[f[0]] || 0) });
          num.addEventListener("input", function () { poly[f[0]] = num.value === "" ? 0 : parseFloat(num.value); });
          item.appendChild(field(f[1], num));
        });
      }
      if (editable) {
        var del = el("button", { type: "button", "class": "danger zn-delete" }, T["delete"]);
        del.addEventListener("click", function () { model.selected = i; surface.deletePoly(); });
        item.appendChild(del);
      } else {
        item.querySelectorAll("input").forEach(function (x) { x.disabled = true; });
      }
      list.appendChild(item);
    });
  }

  function markSelected() {
    document.querySelectorAll(".zn-item").forEach(function (item) {
      item.classList.toggle("on", item.getAttribute("data-index") === String(model.selected));
    });
  }

  function zones() { return model.polys.filter(function (p) { return p.kind === "zone" && p.name; }); }

  // One checkbox per zone, bound to a flag on the zone itself, so renaming a zone keeps it ticked.
  function checks(box, get, set) {
    box.textContent = "";
    var zs = zones();
    if (!zs.length) { box.appendChild(el("span", { "class": "dim" }, T.none)); return; }
    zs.forEach(function (z) {
      var c = el("input", { type: "checkbox", value: z.name });
      c.checked = get(z);
      c.disabled = !editable;
      c.addEventListener("change", function () { set(z, c.checked); });
      var l = el("label", {}, null);
      l.appendChild(c);
      l.appendChild(document.createTextNode(z.name));
      box.appendChild(l);
    });
  }

  function renderRequired() {
    checks($("zn-required"), function (z) { return !!z.required; }, function (z, v) { z.required = v; });
    PROFILES.forEach(function (p) {
      var fs = document.querySelector(".zn-profile[data-profile=" + p + "]");
      var box = fs.querySelector(".zn-pf-required");
      box.hidden = pfInherit[p];
      checks(box, function (z) { return !!(z.pf && z.pf[p]); }, function (z, v) { z.pf = z.pf || {}; z.pf[p] = v; });
    });
  }

  // -- loading and saving the vision document ----------------------------------------

  function load(doc) {
    doc = doc || {};
    var profiles = doc.profiles || {};
    model.polys = [];
    (doc.masks || []).forEach(function (pts) { model.polys.push({ kind: "mask", points: pts.map(function (p) { return p.slice(); }), closed: true }); });
    (doc.zones || []).forEach(function (z) {
      var poly = newZone("zone"), extra = {};
      Object.keys(z).forEach(function (k) { if (ZONE_KEYS.indexOf(k) < 0) extra[k] = z[k]; });
      poly.name = z.name; poly.points = (z.polygon || []).map(function (p) { return p.slice(); }); poly.closed = true;
      poly.kinds = z.kinds || ["person"]; poly.inertia_s = z.inertia_s === undefined ? 1 : z.inertia_s;
      poly.loiter_s = z.loiter_s || 0; poly.extra = extra;
      poly.required = (doc.required_zones || []).indexOf(z.name) >= 0;
      PROFILES.forEach(function (p) { poly.pf[p] = ((profiles[p] || {}).required_zones || []).indexOf(z.name) >= 0; });
      model.polys.push(poly);
    });
    model.selected = model.point = model.drawing = -1;
    profilesKept = JSON.parse(JSON.stringify(profiles));
    $("zn-pf-select").value = profiles.select || "none";
    $("zn-pf-from").value = (profiles.night_hours || {}).from || "";
    $("zn-pf-to").value = (profiles.night_hours || {}).to || "";
    PROFILES.forEach(function (p) {
      var fs = document.querySelector(".zn-profile[data-profile=" + p + "]"), own = profiles[p] || {};
      fs.querySelector(".zn-pf-score").value = own.score_threshold === undefined ? "" : String(own.score_threshold);
      pfInherit[p] = own.required_zones === undefined;
      fs.querySelector(".zn-pf-inherit").checked = pfInherit[p];
    });
    renderList();
    renderRequired();
    surface.draw();
  }

  function toDoc() {
    if (model.polys.some(function (p) { return !p.closed; })) return { error: T.notClosed };
    var zs = model.polys.filter(function (p) { return p.kind === "zone"; });
    var doc = {
      masks: model.polys.filter(function (p) { return p.kind === "mask"; }).map(function (p) { return p.points; }),
      zones: zs.map(function (z) {
        var out = { name: z.name, polygon: z.points, kinds: z.kinds, inertia_s: z.inertia_s, loiter_s: z.loiter_s };
        Object.keys(z.extra || {}).forEach(function (k) { out[k] = z.extra[k]; });
        return out;
      }),
      required_zones: zs.filter(function (z) { return z.required; }).map(function (z) { return z.name; }),
    };
    var pf = JSON.parse(JSON.stringify(profilesKept));
    pf.select = $("zn-pf-select").value;
    var from = $("zn-pf-from").value, to = $("zn-pf-to").value;
    if (from && to) pf.night_hours = { from: from, to: to }; else delete pf.night_hours;
    PROFILES.forEach(function (p) {
      var fs = document.querySelector(".zn-profile[data-profile=" + p + "]"), own = pf[p] || {};
      var score = fs.querySelector(".zn-pf-score").value;
      if (score === "") delete own.score_threshold; else own.score_threshold = parseFloat(score);
      if (pfInherit[p]) delete own.required_zones;
      else own.required_zones = zs.filter(function (z) { return z.pf && z.pf[p]; }).map(function (z) { return z.name; });
      pf[p] = own;
    });
    doc.profiles = pf;
    return { doc: doc };
  }

  PROFILES.forEach(function (p) {
    var fs = document.querySelector(".zn-profile[data-profile=" + p + "]");
    var inherit = fs.querySelector(".zn-pf-inherit");
    inherit.addEventListener("change", function () { pfInherit[p] = inherit.checked; renderRequired(); });
    if (!editable) fs.querySelectorAll("input").forEach(function (x) { x.disabled = true; });
  });
  if (!editable) ["zn-pf-select", "zn-pf-from", "zn-pf-to"].forEach(function (id) { $(id).disabled = true; });

  // -- history and push status ---------------------------------------------------------

  function statusText(row) {
    if (row.status === "applied") return T.applied;
    if (row.status === "refused") return fill(T.refused, { reason: row.reason || "" });
    if (row.status === "unsent") return fill(T.unsent, { reason: row.reason || "" });
    return T.sent;
  }

  function renderHistory(rows) {
    var body = $("zn-history").querySelector("tbody");
    body.textContent = "";
    if (!rows.length) { var tr0 = el("tr"); tr0.appendChild(el("td", { colspan: "6", "class": "dim" }, T.none)); body.appendChild(tr0); return; }
    rows.forEach(function (row) {
      var tr = el("tr", { "data-rev": String(row.rev) });
      tr.appendChild(el("td", {}, row.rev));
      tr.appendChild(el("td", {}, fmt(row.created_ms)));
      tr.appendChild(el("td", {}, row.created_by || "—"));
      tr.appendChild(el("td", {}, row.template || "—"));
      var cls = row.status === "applied" ? "ok" : row.status === "sent" ? "dim" : "bad";
      var st = el("td", { "class": "result" });
      st.appendChild(el("span", { "class": cls }, statusText(row)));
      tr.appendChild(st);
      var td = el("td");
      var btn = el("button", { type: "button", "class": "link zn-load" }, T.load);
      btn.addEventListener("click", function () { load(row.doc); status("zn-push-status", fill(T.loaded, { rev: row.rev }), ""); });
      td.appendChild(btn);
      tr.appendChild(td);
      body.appendChild(tr);
    });
  }

  function refresh() {
    return api("GET", "/api/devices/" + device + "/config").then(function (data) {
      renderHistory(data.history || []);
      return data;
    });
  }

  function watchPush(rev, started) {
    refresh().then(function (data) {
      var row = (data.history || []).filter(function (r) { return r.rev === rev; })[0];
      if (row && row.status === "applied") return status("zn-push-status", T.applied + " · rev " + rev, "ok");
      if (row && row.status === "refused") return status("zn-push-status", fill(T.refused, { reason: row.reason || "" }), "bad");
      if (Date.now() - started > GIVE_UP_MS) return status("zn-push-status", T.timeout, "warn");
      window.setTimeout(function () { watchPush(rev, started); }, POLL_MS);
    }, function () { window.setTimeout(function () { watchPush(rev, started); }, 3 * POLL_MS); });
  }

  var push = $("zn-push");
  if (push) push.addEventListener("click", function () {
    var out = toDoc();
    if (out.error) return status("zn-push-status", out.error, "bad");
    status("zn-push-status", T.pushing, "dim");
    api("POST", "/api/devices/" + device + "/config", { vision: out.doc }).then(function (r) {
      if (r.error) return status("zn-push-status", fill(T.pushFailed, { err: r.error }), "bad");
      status("zn-push-status", fill(T.pushSent, { rev: r.rev }), "");
      watchPush(r.rev, Date.now());
    }, function (err) { status("zn-push-status", fill(T.pushFailed, { err: err.message }), "bad"); });
  });

  var village = $("zn-push-village");
  if (village) village.addEventListener("click", function () {
    var out = toDoc(), name = $("zn-template").value.trim();
    if (out.error) return status("zn-village-status", out.error, "bad");
    if (!name) return status("zn-village-status", T.needTemplate, "bad");
    if (!window.confirm(village.getAttribute("data-confirm"))) return;
    status("zn-village-status", T.pushing, "dim");
    api("POST", "/api/villages/" + root.getAttribute("data-village") + "/config", { vision: out.doc, template: name }).then(function (r) {
      var table = $("zn-village-results"), body = table.querySelector("tbody"), bad = 0;
      body.textContent = "";
      r.results.forEach(function (x) {
        var tr = el("tr", { "data-device": x.device_id });
        tr.appendChild(el("td", { "class": "mono" }, x.device_id));
        tr.appendChild(el("td", {}, x.rev));
        tr.appendChild(el("td", { "class": x.error ? "bad" : "" }, x.error ? fill(T.pushFailed, { err: x.error }) : T.sent));
        if (x.error) bad++;
        body.appendChild(tr);
      });
      table.hidden = false;
      status("zn-village-status", fill(T.villageDone, { ok: r.results.length - bad, bad: bad }), bad ? "warn" : "ok");
      refresh();
    }, function (err) { status("zn-village-status", fill(T.pushFailed, { err: err.message }), "bad"); });
  });

  // -- the live picture ------------------------------------------------------------------

  function showPicture(p) {
    var img = $("zn-img");
    img.onload = function () { surface.draw(); };
    img.width = p.width;
    img.height = p.height;
    img.setAttribute("data-snap", String(p.id));
    img.src = p.url;
    img.hidden = false;
    $("zn-stage").classList.remove("empty");
    status("zn-live-status", fill(T.pictureOf, { time: fmt(p.received_ms) }), "ok");
  }

  function waitPicture(cmd, since, started) {
    api("GET", "/api/devices/" + device + "/picture?after=" + since + "&command=" + encodeURIComponent(cmd)).then(function (r) {
      if (r.picture) return showPicture(r.picture);
      if (r.command && r.command.ok === false) return status("zn-live-status", fill(T.refusedPicture, { err: r.command.error || "" }), "bad");
      if (Date.now() - started > GIVE_UP_MS / 2) return status("zn-live-status", T.noAnswer, "warn");
      window.setTimeout(function () { waitPicture(cmd, since, started); }, POLL_MS);
    }, function () { window.setTimeout(function () { waitPicture(cmd, since, started); }, 3 * POLL_MS); });
  }

  var live = $("zn-live");
  if (live) live.addEventListener("click", function () {
    status("zn-live-status", T.asking, "dim");
    api("POST", "/api/devices/" + device + "/picture").then(function (r) {
      waitPicture(r.command_id, r.since_ms, Date.now());
    }, function (err) { status("zn-live-status", err.message, "bad"); });
  });

  var buttons = { "zn-close": function () { if (!surface.close()) status("zn-push-status", T.notClosed, "warn"); },
    "zn-del-point": function () { surface.deletePoint(); }, "zn-del-poly": function () { surface.deletePoly(); } };
  Object.keys(buttons).forEach(function (id) { if ($(id)) $(id).addEventListener("click", buttons[id]); });

  var img = $("zn-img");
  if (img && !img.hidden && !img.complete) img.addEventListener("load", function () { surface.draw(); });
  load(null);
  refresh().then(function (data) { if (data.current) load(data.current); }, function () {});
})();
