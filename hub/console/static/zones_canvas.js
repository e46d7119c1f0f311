// The zones editor's drawing surface: masks and zones as polygons over the
// device's picture, in fractions 0..1 of it (as the device's config takes them,
// so one config fits any resolution). zones.js owns the forms and the pushes;
// this file only draws and turns the mouse into points. Its own file: the
// console's CSP allows no inline script.
(function () {
  "use strict";
  var HIT_PX = 8; // how near a point a click must be to grab it
  var PALETTE = ["#22c55e", "#3b82f6", "#f59e0b", "#ec4899", "#14b8a6", "#a855f7", "#ef4444", "#eab308"];

  // Three decimals: a thousandth of the frame is under 2 px at 1920, and it keeps the 8 KB command small.
  function round3(v) { return Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000; }

  function inside(points, x, y) {
    var hit = false;
    for (var i = 0, j = points.length - 1; i < points.length; j = i++) {
      var xi = points[i][0], yi = points[i][1], xj = points[j][0], yj = points[j][1];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
    }
    return hit;
  }

  function colour(model, index) {
    var n = 0;
    for (var i = 0; i < index; i++) if (model.polys[i].kind === "zone") n++;
    return PALETTE[n % PALETTE.length];
  }

  // model: {polys: [{kind: "zone"|"mask", points: [[x, y]], closed, name, ...}], selected, point, drawing}
  function Surface(canvas, model, hooks) {
    this.canvas = canvas;
    this.model = model;
    this.hooks = hooks; // newKind() -> "zone"|"mask"; create(kind) -> poly; changed(what)
    this.editable = true;
    this.drag = null;
    var self = this;
    canvas.addEventListener("mousedown", function (ev) { self.down(ev); });
    window.addEventListener("mousemove", function (ev) { self.move(ev); });
    window.addEventListener("mouseup", function () { self.up(); });
    canvas.addEventListener("dblclick", function (ev) { ev.preventDefault(); self.dblclick(); });
    canvas.addEventListener("keydown", function (ev) { self.key(ev); });
    window.addEventListener("resize", function () { self.draw(); });
  }

  Surface.prototype.box = function () { return this.canvas.getBoundingClientRect(); };

  Surface.prototype.frac = function (ev) {
    var r = this.box();
    return [round3((ev.clientX - r.left) / r.width), round3((ev.clientY - r.top) / r.height)];
  };

  Surface.prototype.near = function (p, ev) {
    var r = this.box();
    var dx = p[0] * r.width - (ev.clientX - r.left), dy = p[1] * r.height - (ev.clientY - r.top);
    return dx * dx + dy * dy <= HIT_PX * HIT_PX;
  };

  // The point under the mouse: the selected polygon's first, so overlapping corners stay reachable.
  Surface.prototype.hitPoint = function (ev) {
    var m = this.model, order = [];
    if (m.selected >= 0) order.push(m.selected);
    for (var i = m.polys.length - 1; i >= 0; i--) if (i !== m.selected) order.push(i);
    for (var k = 0; k < order.length; k++) {
      var pts = m.polys[order[k]].points;
      for (var j = 0; j < pts.length; j++) if (this.near(pts[j], ev)) return { poly: order[k], point: j };
    }
    return null;
  };

  Surface.prototype.select = function (poly, point) {
    this.model.selected = poly;
    this.model.point = point;
  };

  Surface.prototype.down = function (ev) {
    if (!this.editable || ev.button !== 0) return;
    ev.preventDefault();
    this.canvas.focus();
    var m = this.model, f = this.frac(ev), hit;
    if (m.drawing >= 0) {
      var open = m.polys[m.drawing];
      if (open.points.length >= 3 && this.near(open.points[0], ev)) return this.close();
      hit = this.hitPoint(ev);
      if (hit && hit.poly === m.drawing) {
        this.select(hit.poly, hit.point);
        this.drag = { kind: "point", moved: false };
        return this.draw();
      }
      open.points.push(f);
      this.select(m.drawing, open.points.length - 1);
      this.hooks.changed("point");
      return this.draw();
    }
    hit = this.hitPoint(ev);
    if (hit) {
      this.select(hit.poly, hit.point);
      this.drag = { kind: "point", moved: false };
      this.hooks.changed("select");
      return this.draw();
    }
    for (var i = m.polys.length - 1; i >= 0; i--) {
      if (m.polys[i].closed && inside(m.polys[i].points, f[0], f[1])) {
        this.select(i, -1);
        this.drag = { kind: "poly", moved: false, from: f, orig: m.polys[i].points.map(function (p) { return p.slice(); }) };
        this.hooks.changed("select");
        return this.draw();
      }
    }
    // Empty picture under the mouse: a new polygon starts here.
    var poly = this.hooks.create(this.hooks.newKind());
    poly.points.push(f);
    m.polys.push(poly);
    m.drawing = m.polys.length - 1;
    this.select(m.drawing, 0);
    this.hooks.changed("new");
    this.draw();
  };

  Surface.prototype.move = function (ev) {
    var d = this.drag, m = this.model;
    if (!d || m.selected < 0) return;
    var f = this.frac(ev), poly = m.polys[m.selected];
    if (d.kind === "point" && m.point >= 0) {
      poly.points[m.point] = f;
    } else if (d.kind === "poly") {
      // Moved as a whole, and stopped at the picture's edges rather than squashed against them.
      var dx = f[0] - d.from[0], dy = f[1] - d.from[1];
      d.orig.forEach(function (p) { dx = Math.min(Math.max(dx, -p[0]), 1 - p[0]); dy = Math.min(Math.max(dy, -p[1]), 1 - p[1]); });
      poly.points = d.orig.map(function (p) { return [round3(p[0] + dx), round3(p[1] + dy)]; });
    }
    d.moved = true;
    this.draw();
  };

  Surface.prototype.up = function () {
    if (this.drag && this.drag.moved) this.hooks.changed("moved");
    this.drag = null;
  };

  Surface.prototype.dblclick = function () {
    var m = this.model;
    if (!this.editable || m.drawing < 0) return;
    // A double-click is two clicks first: drop the points they added on top of each other.
    var pts = m.polys[m.drawing].points;
    while (pts.length > 1) {
      var a = pts[pts.length - 1], b = pts[pts.length - 2];
      if (Math.abs(a[0] - b[0]) > 0.01 || Math.abs(a[1] - b[1]) > 0.01) break;
      pts.pop();
    }
    this.close();
  };

  Surface.prototype.close = function () {
    var m = this.model;
    if (m.drawing < 0 || m.polys[m.drawing].points.length < 3) return false;
    m.polys[m.drawing].closed = true;
    this.select(m.drawing, -1);
    m.drawing = -1;
    this.hooks.changed("closed");
    this.draw();
    return true;
  };

  Surface.prototype.deletePoint = function () {
    var m = this.model;
    if (m.selected < 0 || m.point < 0) return this.deletePoly();
    var poly = m.polys[m.selected];
    poly.points.splice(m.point, 1);
    m.point = -1;
    // A closed polygon needs three corners; with fewer it is no polygon at all.
    if (poly.points.length === 0 || (poly.closed && poly.points.length < 3)) return this.deletePoly();
    this.hooks.changed("point");
    this.draw();
  };

  Surface.prototype.deletePoly = function () {
    var m = this.model;
    if (m.selected < 0) return;
    m.polys.splice(m.selected, 1);
    if (m.drawing === m.selected) m.drawing = -1;
    else if (m.drawing > m.selected) m.drawing--;
    this.select(-1, -1);
    this.hooks.changed("deleted");
    this.draw();
  };

  Surface.prototype.key = function (ev) {
    if (!this.editable) return;
    if (ev.key === "Delete" || ev.key === "Backspace") { ev.preventDefault(); this.deletePoint(); }
    else if (ev.key === "Enter") { ev.preventDefault(); this.close(); }
    else if (ev.key === "Escape" && this.model.drawing >= 0) {
      this.select(this.model.drawing, -1);
      this.deletePoly();
    }
  };

  Surface.prototype.draw = function () {
    var c = this.canvas, r = this.box(), dpr = window.devicePixelRatio || 1;
    var w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    var g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, r.width, r.height);
    var m = this.model, self = this;
    m.polys.forEach(function (poly, i) { self.drawPoly(g, poly, i, r.width, r.height); });
  };

  Surface.prototype.drawPoly = function (g, poly, i, W, H) {
    var m = this.model, on = i === m.selected, pts = poly.points;
    if (!pts.length) return;
    var col = poly.kind === "mask" ? "#f8fafc" : colour(m, i);
    g.beginPath();
    pts.forEach(function (p, j) { if (j) g.lineTo(p[0] * W, p[1] * H); else g.moveTo(p[0] * W, p[1] * H); });
    if (poly.closed) {
      g.closePath();
      // Masks black the picture out (as the device does); zones are tinted in their colour.
      g.fillStyle = poly.kind === "mask" ? "rgba(0,0,0,0.6)" : col + (on ? "66" : "40");
      g.fill();
    }
    g.lineWidth = on ? 3 : 2;
    g.strokeStyle = col;
    g.setLineDash(poly.kind === "mask" ? [6, 4] : poly.closed ? [] : [4, 3]);
    g.stroke();
    g.setLineDash([]);
    if (on || !poly.closed) {
      pts.forEach(function (p, j) {
        var big = !poly.closed && j === 0 && pts.length >= 3; // the point that closes it
        var s = big ? 7 : 4;
        g.fillStyle = j === m.point && on ? "#fff" : col;
        g.strokeStyle = "#111";
        g.lineWidth = 1;
        g.fillRect(p[0] * W - s, p[1] * H - s, 2 * s, 2 * s);
        g.strokeRect(p[0] * W - s, p[1] * H - s, 2 * s, 2 * s);
      });
    }
    if (poly.kind === "zone" && poly.name) {
      var x = pts.reduce(function (a, p) { return a + p[0]; }, 0) / pts.length * W;
      var y = pts.reduce(function (a, p) { return a + p[1]; }, 0) / pts.length * H;
      g.font = "600 14px system-ui, sans-serif";
      g.textAlign = "center";
      g.textBaseline = "middle";
      g.lineWidth = 3;
      g.strokeStyle = "rgba(0,0,0,0.8)";
      g.strokeText(poly.name, x, y);
      g.fillStyle = "#fff";
      g.fillText(poly.name, x, y);
    }
  };

  window.XLZoneSurface = { Surface: Surface, round3: round3, colour: colour };
})();
