// Keyboard labelling with the next item already in the page.
//
// The server sends #work with the current item (.held) and the next one, claimed ahead, in a
// <template class="ahead">. A label key (or S) swaps the next item in at once, in the same
// frame, and the submit goes in the background: one request at a time, in order, each
// carrying its own request id (a retry stores one label). The server's answer brings the
// progress, notices and the item after that, which the page holds in turn.
//
// When the page and the server disagree (the hold on the item shown ended, a label was
// refused) the page says so and shows what the server holds, so nobody loses their place.
// When the page goes away it gives back the item it held ahead (sendBeacon on pagehide); the
// lease's own timeout is the backstop. Submits use keepalive, so a label sent just before the
// page closes still arrives.
//
// Also measures how long each item has been on screen (paused while the tab is hidden) and
// sends it with its label as time_ms. Undo (U) and Revisit (R) stay htmx forms.
(function () {
  "use strict";
  // Keys pressed while the page has no item to show wait here and are replayed, one per new
  // item, in order; beyond this many they are refused, visibly.
  const MAX_PENDING = 5;
  const RETRY_MS = [500, 1000, 2000, 4000, 8000];
  const pending = [];
  const outbox = []; // submits taken on the page, not yet sent: {url, body, lease, key}
  let sending = null; // the one submit in flight
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

  // What went wrong with a label, kept on screen outside #work until the next such message.
  function showStatus(message) {
    const status = document.getElementById("label-status");
    if (!status) return;
    status.textContent = message;
    status.hidden = !message;
  }

  function work() {
    return document.getElementById("work");
  }

  function shownLease(area) {
    return area && area.dataset.lease ? area.dataset.lease : null;
  }

  function busy(area) {
    // Not yet wired up, or an htmx request (Undo, Revisit) in flight, or submits to send.
    return !area.dataset.ready || area.querySelector(".htmx-request") !== null ||
      sending !== null || outbox.length > 0;
  }

  function buttonFor(area, key) {
    return area.querySelector('button[data-key="' + CSS.escape(key) + '"]');
  }

  function waiting() {
    const note = document.createElement("div");
    note.className = "held waiting";
    note.setAttribute("aria-busy", "true");
    note.innerHTML = '<p class="muted">Saving your label; the next item comes with the answer.</p>';
    return note;
  }

  // The next item, in place of the one just answered; false when the page holds none.
  function swapInAhead(area) {
    const ahead = area.querySelector(":scope > template.ahead");
    const held = area.querySelector(":scope > .held");
    if (!held) return false;
    if (!ahead || !ahead.content.firstElementChild) {
      held.replaceWith(waiting());
      delete area.dataset.lease;
      return false;
    }
    const next = ahead.content.firstElementChild;
    held.replaceWith(next);
    ahead.remove();
    area.dataset.lease = next.dataset.lease;
    // A template's content is not processed by htmx: an item with its own htmx forms (the
    // study page's "This helped" / "This is wrong") is wired up once it is in the page, when
    // the browser is idle, so that showing the item waits for nothing. (Clicked before that,
    // such a form still posts as a plain form.)
    if (window.htmx && next.querySelector("[hx-post]")) {
      (window.requestIdleCallback || setTimeout)(function () { window.htmx.process(next); });
    }
    itemShown();
    return true;
  }

  // A label or skip form of the item shown: queue its submit, show the next item now.
  function take(form) {
    const area = work();
    const body = new URLSearchParams(new FormData(form));
    if (body.has("time_ms")) body.set("time_ms", String(timeOnItem()));
    outbox.push({ url: form.action, body: body, lease: body.get("assignment"), key: body.get("key") });
    swapInAhead(area);
    pump();
  }

  function pump() {
    if (sending !== null || !outbox.length) return;
    sending = outbox.shift();
    send(sending, 0);
  }

  function send(entry, attempt) {
    fetch(entry.url, {
      method: "POST",
      body: entry.body,
      headers: { "HX-Request": "true" },
      credentials: "same-origin",
      keepalive: true,
    }).then(function (response) {
      if (response.status >= 500 && attempt < RETRY_MS.length) {
        retryLater(entry, attempt, "The server failed (" + response.status + ")");
        return null;
      }
      if (!response.ok) {
        showStatus("Not stored: the server answered " + response.status +
          ". Reload the page to go on.");
        sending = null;
        pump();
        return null;
      }
      const redirect = response.headers.get("HX-Redirect");
      if (redirect) {
        // Nothing left to label (the study page's end): the server says where to go.
        window.location.assign(redirect);
        return null;
      }
      return response.text().then(function (html) {
        showStatus("");
        settle(html);
        sending = null;
        pump();
        replay();
      });
    }, function () {
      retryLater(entry, Math.min(attempt, RETRY_MS.length - 1), "No connection");
    });
  }

  function retryLater(entry, attempt, why) {
    // The same request id: if the first try was stored after all, the server says so.
    showStatus(why + ": your label is kept and sent again in a moment.");
    setTimeout(function () { send(entry, attempt + 1); }, RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]);
  }

  function itemOf(area) {
    const item = area && area.querySelector(":scope > .held article.item");
    return item ? item.id : null;
  }

  // The server's answer to a submit: #work as it sees it (its current item, the next one).
  function settle(html) {
    const incoming = new DOMParser().parseFromString(html, "text/html").getElementById("work");
    const area = work();
    if (!incoming || !area) return;
    const serverLease = shownLease(incoming);
    const refused = incoming.querySelector(".refused");
    if (refused) {
      // Said once, outside #work, where the next swap does not take it away.
      showStatus(refused.textContent);
      refused.remove();
    }
    const mine = shownLease(area);
    if (mine !== null && mine === serverLease) {
      // In step: the item on screen is the server's current one. Keep it (and its time);
      // take the progress, notices and the next item held ahead.
      incoming.querySelector(":scope > .held").replaceWith(area.querySelector(":scope > .held"));
      adopt(area, incoming, false);
      return;
    }
    if (mine === null && outbox.length && outbox[0].lease === serverLease) {
      // One step ahead of the server: the page already answered its current item (that
      // submit is next to go), so what comes after it is what to show.
      incoming.querySelector(":scope > .held").replaceWith(waiting());
      incoming.dataset.lease = "";
      adopt(area, incoming, false);
      swapInAhead(incoming); // stays waiting when the server holds nothing after it
      return;
    }
    // Out of step: the hold on the item shown ended, or the queue changed under the page.
    const before = itemOf(area);
    adopt(area, incoming, true);
    if (mine !== null && before !== itemOf(work())) {
      showStatus("Your hold on the item you were on ended (it went back to the queue): " +
        "here is what the server holds for you now.");
    }
  }

  function adopt(area, incoming, newItem) {
    incoming.dataset.ready = "1";
    area.replaceWith(incoming);
    if (window.htmx) window.htmx.process(incoming); // Undo and Revisit are htmx forms
    if (newItem) itemShown();
  }

  // Keys that waited: each goes to the item now shown, in order.
  function replay() {
    const area = work();
    if (!pending.length || !area || !area.dataset.ready) return;
    if (area.querySelector(":scope > .held.waiting")) return; // the next item is on its way
    const key = pending[0];
    const button = buttonFor(area, key);
    if (!button) {
      // The queue ended (or the item changed kind): nothing takes the rest.
      pending.length = 0;
      showPending(key.toUpperCase() + " was not taken: nothing here answers to it.");
      return;
    }
    // Undo and Revisit wait for the submits before them; a label key goes at once.
    if (!button.closest("form[data-held]") && busy(area)) return;
    pending.shift();
    showPending();
    press(button);
  }

  function press(button) {
    const form = button.closest("form");
    if (form && form.hasAttribute("data-held")) {
      take(form);
      replay(); // a next key, if one waits, for the item just swapped in
    } else {
      button.click(); // an htmx form: Undo, Revisit
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    const area = work();
    if (!area) return;
    const key = event.key.toLowerCase();
    const button = buttonFor(area, key);
    // A label key while the page waits for its next item: kept for the item that comes.
    const waitingForItem = shownLease(area) === null && area.querySelector(".held.waiting");
    if (!button && !(waitingForItem && /^[0-9a-z]$/.test(key))) return;
    event.preventDefault();
    const heldKey = button && button.closest("form[data-held]");
    if (!area.dataset.ready || pending.length || waitingForItem || (!heldKey && busy(area))) {
      if (pending.length >= MAX_PENDING) {
        showPending("Too many keys at once: " + key.toUpperCase() + " was not taken.");
        return;
      }
      pending.push(key);
      showPending();
      return;
    }
    press(button);
  });

  // A click on a label or Skip button goes the same way as its key.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-held")) return;
    const area = work();
    if (!area || !area.dataset.ready) return; // not wired up yet: a plain form post
    event.preventDefault();
    take(form);
  });

  // Leaving: the item held ahead goes back to the queue now, not when its lease runs out, and
  // submits not yet sent go out (keepalive) rather than being lost with the page.
  window.addEventListener("pagehide", function () {
    while (outbox.length) {
      const entry = outbox.shift();
      fetch(entry.url, { method: "POST", body: entry.body, headers: { "HX-Request": "true" },
        credentials: "same-origin", keepalive: true });
    }
    const area = work();
    const ahead = area && area.querySelector(":scope > template.ahead");
    const token = area && area.querySelector("input[name=csrfmiddlewaretoken]");
    if (!ahead || !token || !ahead.content.firstElementChild) return;
    const body = new URLSearchParams();
    body.set("csrfmiddlewaretoken", token.value);
    body.set("assignment", ahead.content.firstElementChild.dataset.lease);
    navigator.sendBeacon(area.dataset.release, body);
    ahead.remove(); // given back: this page no longer holds it
  });

  // Back from the back/forward cache: what it held may be gone; ask the server afresh.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) window.location.reload();
  });

  // htmx:load fires once new content (the first page, or a swapped-in #work) is processed.
  document.addEventListener("htmx:load", function (event) {
    const area = event.detail.elt.id === "work" ? event.detail.elt : event.detail.elt.querySelector("#work");
    if (!area || area.dataset.ready) return;
    area.dataset.ready = "1";
    itemShown();
    replay();
  });
})();
