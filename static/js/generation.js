// Ticks the elapsed seconds of every generation status line (templates/llm/_state.html).
// The phase, the seconds at render time and the tokens/s all come from the server; only the
// passing of time since the line arrived is counted here, so browser and server clocks never
// need to agree.
(function () {
  const seen = new WeakMap();
  function tick() {
    const now = performance.now();
    document.querySelectorAll(".gen-state[data-elapsed]").forEach(function (line) {
      if (!seen.has(line)) seen.set(line, now);
      const elapsed = parseFloat(line.dataset.elapsed) + (now - seen.get(line)) / 1000;
      const out = line.querySelector(".gen-elapsed");
      if (out) out.textContent = Math.round(elapsed) + " s";
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("htmx:load", tick);
})();
