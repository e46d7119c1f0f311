// The event page's clip: the timeline seeks the video, the detection nearest the
// current time is boxed over it, and while a requested clip uploads its progress
// is polled from /api/clips/<device>/<event> until it is stored (then the page
// reloads to show the player). A separate file: the page's CSP allows no inline script.
(function () {
  "use strict";
  var section = document.getElementById("clip");
  if (!section) return;

  var video = document.getElementById("clip-video");
  if (video) {
    var marks = JSON.parse(video.getAttribute("data-detections") || "[]");
    var timeline = document.getElementById("clip-timeline");
    var playhead = document.getElementById("clip-playhead");
    var box = document.querySelector("#clip-boxes rect");
    var duration = timeline ? parseFloat(timeline.getAttribute("data-duration")) || 0 : 0;
    // A detection is shown for this long around its time: the devices record at a few frames a second.
    var HOLD_S = 0.6;

    function seek(t) {
      video.currentTime = Math.max(0, t);
    }

    if (timeline) {
      timeline.addEventListener("click", function (ev) {
        var t = ev.target.getAttribute && ev.target.getAttribute("data-t");
        if (t !== null && t !== undefined) return seek(parseFloat(t));
        // Anywhere else on the bar: that point of the clip.
        var rect = timeline.getBoundingClientRect();
        var total = isFinite(video.duration) ? video.duration : duration;
        seek(((ev.clientX - rect.left) / rect.width) * total);
      });
      timeline.addEventListener("keydown", function (ev) {
        var t = ev.target.getAttribute && ev.target.getAttribute("data-t");
        if (t && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); seek(parseFloat(t)); }
      });
    }

    function draw() {
      var now = video.currentTime;
      var total = isFinite(video.duration) && video.duration > 0 ? video.duration : duration;
      if (playhead && total > 0) playhead.setAttribute("x", String(Math.min(997, (now / total) * 1000)));
      var best = null;
      marks.forEach(function (m) {
        var d = Math.abs(m.t - now);
        if (d <= HOLD_S && (best === null || d < Math.abs(best.t - now))) best = m;
      });
      if (!box) return;
      if (best === null) { box.setAttribute("visibility", "hidden"); return; }
      // Boxes are permille of the camera's frame, and the clip is that whole frame scaled.
      box.setAttribute("x", String(best.box[0]));
      box.setAttribute("y", String(best.box[1]));
      box.setAttribute("width", String(best.box[2] - best.box[0]));
      box.setAttribute("height", String(best.box[3] - best.box[1]));
      box.setAttribute("visibility", "visible");
    }
    ["timeupdate", "seeked", "loadeddata"].forEach(function (name) { video.addEventListener(name, draw); });
    return;
  }

  var url = section.getAttribute("data-progress");
  var active = (section.getAttribute("data-active") || "").split(" ");
  var state = document.getElementById("clip-state");
  var bar = document.getElementById("clip-progress");
  var bytes = document.getElementById("clip-bytes");
  var texts = document.getElementById("clip-texts");
  if (!state || active.indexOf(state.getAttribute("data-state")) < 0) return;

  function show(p) {
    state.setAttribute("data-state", p.state);
    var label = texts && texts.getAttribute("data-" + p.state);
    if (label) state.textContent = label;
    if (p.total) {
      bar.max = p.total;
      bar.value = p.received;
      bytes.textContent = Math.floor((100 * p.received) / p.total) + "% · " + (p.received / 1048576).toFixed(2) + " / " + (p.total / 1048576).toFixed(2) + " MB";
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (resp) { if (!resp.ok) throw new Error("clip " + resp.status); return resp.json(); })
      .then(function (p) {
        show(p);
        if (p.state === "stored" || p.state === "refused") { window.setTimeout(function () { location.reload(); }, 300); return; }
        if (active.indexOf(p.state) >= 0) window.setTimeout(poll, 1000);
      }, function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();
