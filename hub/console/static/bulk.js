// A bulk job's page: poll its JSON until the job is done, updating the counts and the results table.
// No inline script (strict CSP): labels come from a <template>, values are set as text, never as HTML.
(function () {
  "use strict";
  var root = document.getElementById("bulk-job");
  if (!root) return;
  var id = root.getAttribute("data-job");
  var status = root.getAttribute("data-status") || "";
  var labels = {};
  var tpl = document.getElementById("bulk-labels");
  if (tpl) tpl.content.querySelectorAll("[data-s]").forEach(function (el) { labels[el.getAttribute("data-s")] = el.textContent; });

  function time(ms) {
    if (!ms) return "—";
    var d = new Date(ms);
    return d.toLocaleString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function render(job) {
    Object.keys(job.counts).forEach(function (k) {
      var el = root.querySelector('[data-bulk="' + k + '"]');
      if (el) el.textContent = String(job.counts[k]);
    });
    var meter = document.getElementById("bulk-meter");
    if (meter) meter.value = job.total - (job.counts.pending || 0) - (job.counts.sent || 0);
    var state = document.getElementById("bulk-state");
    state.textContent = job.done ? labels.done : labels.running;
    state.className = job.done ? "ok" : "";
    root.setAttribute("data-done", job.done ? "1" : "0");
    var body = document.getElementById("bulk-results");
    var rows = document.createDocumentFragment();
    job.results.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-device", r.device_id);
      var a = document.createElement("a");
      a.href = "/devices/" + encodeURIComponent(r.device_id);
      a.textContent = r.device_id;
      cell(tr, "", "mono").appendChild(a);
      cell(tr, labels[r.status] || r.status, "bulk-st " + r.status);
      cell(tr, r.reason || "");
      cell(tr, time(r.sent_ms));
      cell(tr, time(r.done_ms));
      rows.appendChild(tr);
    });
    body.replaceChildren(rows);
  }

  function poll() {
    var offset = root.getAttribute("data-offset") || "0";
    var url = "/api/bulk/jobs/" + encodeURIComponent(id) + "?offset=" + encodeURIComponent(offset) +
      (status ? "&status=" + encodeURIComponent(status) : "");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (resp) { if (!resp.ok) throw new Error("job " + resp.status); return resp.json(); })
      .then(function (job) { render(job); if (!job.done) window.setTimeout(poll, 1000); })
      .catch(function () { window.setTimeout(poll, 3000); });
  }

  if (root.getAttribute("data-done") !== "1") poll();
})();
