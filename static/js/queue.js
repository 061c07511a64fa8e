// Keyboard labelling: a key press clicks the matching button in #work; htmx does the rest.
// Also records how long the current item has been on screen, into each label form.
(function () {
  "use strict";
  let shownAt = performance.now();

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    const work = document.getElementById("work");
    // Not yet processed by htmx (a click would post the form natively) or a request in flight.
    if (!work || !work.dataset.ready || work.querySelector(".htmx-request")) return;
    const button = work.querySelector('button[data-key="' + CSS.escape(event.key.toLowerCase()) + '"]');
    if (!button) return;
    event.preventDefault();
    button.click();
  });

  document.addEventListener("htmx:configRequest", function (event) {
    if ("time_ms" in event.detail.parameters) {
      event.detail.parameters.time_ms = String(Math.round(performance.now() - shownAt));
    }
  });

  // htmx:load fires once new content (the first page, or a swapped-in #work) is processed.
  document.addEventListener("htmx:load", function (event) {
    const work = event.detail.elt.id === "work" ? event.detail.elt : event.detail.elt.querySelector("#work");
    if (work && !work.dataset.ready) {
      work.dataset.ready = "1";
      shownAt = performance.now();
    }
  });
})();
