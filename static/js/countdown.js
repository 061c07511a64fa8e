// The per-item countdown of a timed experiment arm. The server says how many milliseconds
// are left (its clock decides what is late); at zero the page posts the time-out form, and
// the server moves the participant on.
(function () {
  "use strict";
  let timer = null;

  function start(work) {
    if (timer !== null) clearInterval(timer);
    timer = null;
    if (!work || work.dataset.remainingMs === undefined) return;
    const deadline = performance.now() + Number(work.dataset.remainingMs);
    const shown = work.querySelector("#countdown");
    function tick() {
      const left = Math.max(0, deadline - performance.now());
      if (shown) shown.textContent = String(Math.ceil(left / 1000));
      if (left > 0) return;
      clearInterval(timer);
      timer = null;
      const button = work.querySelector("button[data-timeout]");
      if (button && work.isConnected) button.click();
    }
    timer = setInterval(tick, 250);
    tick();
  }

  document.addEventListener("htmx:load", function (event) {
    const work = event.detail.elt.id === "work" ? event.detail.elt : event.detail.elt.querySelector("#work");
    if (work) start(work);
  });
})();
