// Live updates without reloading: counters from /api/live (small JSON), and every
// element marked data-live re-rendered by the server and swapped in place by id.
(function () {
  "use strict";
  var body = document.body;
  var period = Math.max(2, parseInt(body.getAttribute("data-refresh") || "5", 10)) * 1000;
  var liveEl = document.getElementById("live");
  var timeEl = document.getElementById("live-time");
  var busy = false;

  function stamp(ok) {
    if (!liveEl) return;
    liveEl.classList.toggle("stale", !ok);
    if (ok && timeEl) timeEl.textContent = new Date().toLocaleTimeString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai" });
  }

  function toLogin(resp) {
    // A session that expired while the page was open: go to the login page once.
    if (resp.redirected && resp.url.indexOf("/login") >= 0) { window.location.assign(resp.url); return true; }
    if (resp.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); return true; }
    return false;
  }

  function counters() {
    if (!document.querySelector("[data-count]")) return Promise.resolve();
    return fetch("/api/live", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (resp) {
        if (toLogin(resp) || !resp.ok) throw new Error("live " + resp.status);
        return resp.json();
      })
      .then(function (data) {
        document.querySelectorAll("[data-count]").forEach(function (el) {
          var v = data[el.getAttribute("data-count")];
          if (v === undefined) return;
          el.textContent = String(v);
          if (el.hasAttribute("data-hide-zero")) el.hidden = !v;
        });
      });
  }

  function regions() {
    var live = document.querySelectorAll("[data-live][id]");
    if (!live.length) return Promise.resolve();
    return fetch(location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (resp) {
        if (toLogin(resp) || !resp.ok) throw new Error("page " + resp.status);
        return resp.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        live.forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          // Leave a region alone while the operator is typing or clicking in it.
          if (!fresh || el.contains(document.activeElement) && document.activeElement !== body) return;
          if (fresh.innerHTML !== el.innerHTML) el.innerHTML = fresh.innerHTML;
        });
      });
  }

  function tick() {
    if (busy || document.hidden) return;
    busy = true;
    Promise.all([counters(), regions()])
      .then(function () { stamp(true); }, function () { stamp(false); })
      .then(function () { busy = false; });
  }

  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) tick(); });
  if (document.querySelector("[data-count], [data-live]")) {
    tick();
    window.setInterval(tick, period);
  }
})();
