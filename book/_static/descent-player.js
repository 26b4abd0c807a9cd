/* Descent book: trajectories that play in the static page (no kernel, no network).
 *
 * descent.plots.interactive writes, in a chapter's output, a <figure class="descent-player">
 * holding an SVG drawn at build time (contour lines, the default path), hidden controls and
 * its data as JSON (<script type="application/json" class="dp-data">). This script finds
 * each such figure, shows its controls and redraws the dynamic parts (the path, the iterate,
 * the error curve, the read-outs) from the data when a slider moves or while it plays.
 *
 * Two kinds:
 *   momentum — heavy ball for a grid of step sizes α and momenta β: sliders pick the pair.
 *   race     — several paths on one landscape, racing step by step.
 * Both have Play/Pause and an iteration slider t. Without JavaScript the SVG stays a figure.
 */
(function () {
  "use strict";

  const FRAME_MS = 60;               // one iteration per frame while playing

  function toPixels(data) {
    const [x0, x1, y0, y1] = data.view;
    const [w, h] = data.size;
    return (x, y) => [(x - x0) / (x1 - x0) * w, (y1 - y) / (y1 - y0) * h];
  }

  function pathD(points) {
    // points: [[u, v], ...] in SVG units
    if (!points.length) return "";
    return "M" + points.map(p => p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" L");
  }

  function pointsOf(flat, px, upto) {
    // flat: [x0, y0, x1, y1, ...] in data units; the first min(upto + 1, n) points
    const n = Math.min(flat.length / 2, upto + 1);
    const out = [];
    for (let k = 0; k < n; k++) out.push(px(flat[2 * k], flat[2 * k + 1]));
    return out;
  }

  function fmt(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return "—";
    return Number(x.toPrecision(digits)).toString();
  }

  function sci(log10) {
    // 10^log10, which the data round to 0.1 decade (±12%): one digit, "≈ 3 × 10⁻⁵"
    if (log10 === null || log10 === undefined) return "off the scale (diverged)";
    if (log10 <= -12) return "below 10⁻¹²";
    const value = Math.pow(10, log10);
    if (log10 > -3) return "≈ " + fmt(value, 1);
    let e = Math.floor(log10);
    let mantissa = Math.round(value / Math.pow(10, e));
    if (mantissa === 10) { mantissa = 1; e += 1; }
    const sup = String(e).replace(/-/g, "⁻").replace(/\d/g, d => "⁰¹²³⁴⁵⁶⁷⁸⁹"[d]);
    return "≈ " + mantissa + " × 10" + sup;
  }

  // Play/Pause and the iteration slider, shared by both kinds. draw(t) redraws at step t.
  function timeline(root, steps, draw) {
    const button = root.querySelector(".dp-play");
    const slider = root.querySelector(".dp-t");
    const out = root.querySelector(".dp-t-out");
    let t = Number(slider.value), timer = null;

    function show(step) {
      t = Math.max(0, Math.min(steps, step));
      slider.value = String(t);
      out.textContent = String(t);
      root.dataset.t = String(t);
      draw(t);
    }
    function pause() {
      if (timer !== null) clearInterval(timer);
      timer = null;
      button.textContent = "Play";
      button.setAttribute("aria-pressed", "false");
      root.dataset.playing = "false";
    }
    function play() {
      if (t >= steps) show(0);                 // at the end: start again
      button.textContent = "Pause";
      button.setAttribute("aria-pressed", "true");
      root.dataset.playing = "true";
      timer = setInterval(() => {
        if (t >= steps) { pause(); return; }
        show(t + 1);
      }, FRAME_MS);
    }
    button.addEventListener("click", () => (timer === null ? play() : pause()));
    slider.addEventListener("input", () => { pause(); show(Number(slider.value)); });
    return { show, current: () => t };
  }

  function momentum(root, data) {
    const px = toPixels(data);
    const plot = root.querySelector(".dp-plot");
    const path = plot.querySelector(".dp-path");
    const start = plot.querySelector(".dp-start");
    const iterate = plot.querySelector(".dp-iterate");
    const errorSvg = root.querySelector(".dp-error");
    const curve = errorSvg.querySelector(".dp-errcurve");
    const rateLine = errorSvg.querySelector(".dp-rate");
    const now = errorSvg.querySelector(".dp-now");
    const readout = root.querySelector(".dp-readout");
    const lr = root.querySelector(".dp-lr"), lrOut = root.querySelector(".dp-lr-out");
    const beta = root.querySelector(".dp-momentum");
    const betaOut = root.querySelector(".dp-momentum-out");
    const [ew, eh] = errorSvg.viewBox.baseVal ? [errorSvg.viewBox.baseVal.width,
                                                 errorSvg.viewBox.baseVal.height] : [688, 150];
    const ex = t => t / data.steps * ew;
    const ey = log => (1 - log) / 13 * eh;      // log10 error from 1 (top) to −12 (bottom)

    function pair() {
      return Number(lr.value) * data.momenta.length + Number(beta.value);
    }
    function drawPair() {
      const k = pair();
      const flat = data.paths[k];
      path.setAttribute("d", pathD(pointsOf(flat, px, Infinity)));
      const first = px(flat[0], flat[1]);
      start.setAttribute("cx", first[0].toFixed(1));
      start.setAttribute("cy", first[1].toFixed(1));
      const logs = data.logerr[k];
      const pts = [];
      for (let t = 0; t < logs.length; t++) {
        if (logs[t] === null) break;
        pts.push([ex(t), ey(logs[t])]);
      }
      curve.setAttribute("d", pathD(pts));
      if (data.rates && logs[0] !== null) {
        const rho = data.rates[k];
        const end = Math.log10(rho) * data.steps + logs[0];   // log of ρᵗ‖θ₀ − θ*‖
        rateLine.setAttribute("d", pathD([[ex(0), ey(logs[0])], [ex(data.steps), ey(end)]]));
      }
      lrOut.textContent = fmt(data.lrs[Number(lr.value)], 3);
      betaOut.textContent = fmt(data.momenta[Number(beta.value)], 3);
      root.dataset.pair = String(k);
    }
    function drawStep(t) {
      const k = pair();
      const flat = data.paths[k];
      const n = flat.length / 2;
      const s = Math.min(t, n - 1);
      const p = px(flat[2 * s], flat[2 * s + 1]);
      iterate.setAttribute("cx", p[0].toFixed(1));
      iterate.setAttribute("cy", p[1].toFixed(1));
      now.setAttribute("x1", ex(t).toFixed(1));
      now.setAttribute("x2", ex(t).toFixed(1));
      const alpha = fmt(data.lrs[Number(lr.value)], 3);
      const b = fmt(data.momenta[Number(beta.value)], 3);
      let text = "α = " + alpha + ", β = " + b;
      if (data.rates) {
        const rho = data.rates[k];
        text += ": rate ρ = " + fmt(rho, 4) + (rho < 1 ? " (converges)" : " (diverges)");
      }
      text += ". At t = " + t + ", ‖θₜ − θ*‖ " + sci(data.logerr[k][t]) + ".";
      readout.textContent = text;
    }
    const clock = timeline(root, data.steps, drawStep);
    function redraw() { drawPair(); clock.show(clock.current()); }
    lr.addEventListener("input", redraw);
    beta.addEventListener("input", redraw);
    redraw();
  }

  function race(root, data) {
    const px = toPixels(data);
    const paths = root.querySelectorAll(".dp-plot .dp-path");
    const iterates = root.querySelectorAll(".dp-plot .dp-iterate");
    const losses = root.querySelectorAll(".dp-legend .dp-loss");
    function drawStep(t) {
      data.runs.forEach((run, k) => {
        const pts = pointsOf(run.path, px, t);
        paths[k].setAttribute("d", pathD(pts));
        const p = pts[pts.length - 1];
        iterates[k].setAttribute("cx", p[0].toFixed(1));
        iterates[k].setAttribute("cy", p[1].toFixed(1));
        const f = run.loss[Math.min(t, run.loss.length - 1)];
        losses[k].textContent = "f(θₜ) = " + (f === null ? "diverged" : fmt(f, 3));
      });
    }
    timeline(root, data.steps, drawStep).show(data.steps);
  }

  function init(root) {
    if (root.dataset.ready) return;
    const source = root.querySelector("script.dp-data");
    if (!source) return;
    const data = JSON.parse(source.textContent);
    root.querySelector(".dp-controls").hidden = false;
    if (data.kind === "momentum") momentum(root, data);
    else if (data.kind === "race") race(root, data);
    root.dataset.ready = "true";
  }

  function initAll() {
    document.querySelectorAll("figure.descent-player").forEach(init);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", initAll);
  } else {
    initAll();
  }
})();
