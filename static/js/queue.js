// Keyboard labelling: a key press clicks the matching button in #work; htmx does the rest.
// Also measures how long the current item has been on screen (paused while the tab is
// hidden) and sends it with each label as time_ms.
(function () {
  "use strict";
  // Keys pressed while a submit is in flight wait here and are replayed, one per new item,
  // in order; beyond this many they are refused, visibly.
  const MAX_PENDING = 5;
  const pending = [];
  let visibleMs = 0;
  let visibleSince = document.hidden ? null : performance.now();

  function timeOnItem() {
    const running = visibleSince === null ? 0 : performance.now() - visibleSince;
    return Math.round(visibleMs + running);
  }

  function itemShown() {
    visibleMs = 0;
    visibleSince = document.hidden ? null : performance.now();
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden && visibleSince !== null) {
      visibleMs += performance.now() - visibleSince;
      visibleSince = null;
    } else if (!document.hidden && visibleSince === null) {
      visibleSince = performance.now();
    }
  });

  function showPending(message) {
    const note = document.getElementById("key-queue");
    if (!note) return;
    note.textContent = message || (pending.length
      ? "Queued: " + pending.map(function (key) { return key.toUpperCase(); }).join(" ")
      : "");
  }

  function busy(work) {
    // Not yet processed by htmx (a click would post the form natively) or a request in flight.
    return !work.dataset.ready || work.querySelector(".htmx-request") !== null;
  }

  function buttonFor(work, key) {
    return work.querySelector('button[data-key="' + CSS.escape(key) + '"]');
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    const work = document.getElementById("work");
    const key = event.key.toLowerCase();
    if (!work || !buttonFor(work, key)) return;
    event.preventDefault();
    if (busy(work) || pending.length) {
      if (pending.length >= MAX_PENDING) {
        showPending("Too many keys at once: " + key.toUpperCase() + " was not taken.");
        return;
      }
      pending.push(key);
      showPending();
      return;
    }
    buttonFor(work, key).click();
  });

  document.addEventListener("htmx:configRequest", function (event) {
    // htmx 2's parameters are a FormData proxy: `in` cannot see its fields, so ask the form.
    const form = event.detail.elt.closest ? event.detail.elt.closest("form") : null;
    if (form && form.elements.namedItem("time_ms")) {
      event.detail.parameters.time_ms = String(timeOnItem());
    }
  });

  // htmx:load fires once new content (the first page, or a swapped-in #work) is processed.
  document.addEventListener("htmx:load", function (event) {
    const work = event.detail.elt.id === "work" ? event.detail.elt : event.detail.elt.querySelector("#work");
    if (!work || work.dataset.ready) return;
    work.dataset.ready = "1";
    itemShown();
    if (!pending.length) return;
    const key = pending.shift();
    showPending();
    const button = buttonFor(work, key);
    if (button) {
      setTimeout(function () { button.click(); }, 0);  // after htmx has finished this swap
    } else {
      // The queue ended (or the item changed kind): nothing takes the rest.
      pending.length = 0;
      showPending(key.toUpperCase() + " was not taken: nothing here answers to it.");
    }
  });
})();
