// The console's live escalation channel (issue 21): every page polls the open
// chains and beeps (WebAudio, no audio file) when a chain is new or reaches a
// further step, so an operator on any page hears it. Browsers keep audio off
// until the page has been clicked once; the banner says so.
(function () {
  "use strict";
  var POLL_MS = 5000;
  var seen = {};
  var first = true;
  var audio = null;

  function beep() {
    try {
      if (!audio) { audio = new (window.AudioContext || window.webkitAudioContext)(); }
      if (audio.state === "suspended") { audio.resume(); }
      [0, 0.35, 0.7].forEach(function (at) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.frequency.value = 880;
        gain.gain.value = 0.2;
        osc.connect(gain);
        gain.connect(audio.destination);
        osc.start(audio.currentTime + at);
        osc.stop(audio.currentTime + at + 0.2);
      });
    } catch (e) { /* no audio device: the banner still shows */ }
  }

  function banner(chains) {
    var box = document.getElementById("esc-live");
    if (!box) {
      box = document.createElement("div");
      box.id = "esc-live";
      box.className = "esc-live";
      var main = document.querySelector("main");
      if (main) { main.insertBefore(box, main.firstChild); }
    }
    box.textContent = "";
    var open = chains.filter(function (c) { return c.status !== "acked"; });
    box.hidden = open.length === 0;
    open.forEach(function (c) {
      var a = document.createElement("a");
      a.href = "/escalation";
      a.className = "esc-live-item esc-" + c.kind;
      a.textContent = c.kind + " · " + c.group_id + " · " + c.household_id + " · " + c.step + "/4";
      box.appendChild(a);
    });
  }

  function poll() {
    fetch("/api/escalation/live", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var fresh = false;
        data.chains.forEach(function (c) {
          var key = c.alert_id + ":" + c.step;
          if (c.status !== "acked" && !seen[key]) { fresh = true; }
          seen[key] = true;
        });
        banner(data.chains);
        if (fresh && !first) { beep(); }
        first = false;
      })
      .catch(function () { /* the hub restarting: try again next time */ });
  }

  document.addEventListener("click", function () {
    if (audio && audio.state === "suspended") { audio.resume(); }
    if (!audio) { try { audio = new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { audio = null; } }
  }, { once: true });
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("header.top")) { return; } // the login page
    poll();
    window.setInterval(poll, POLL_MS);
  });
})();
