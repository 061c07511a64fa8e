// Keep a judge's two probabilities summing to 100 while they type (the server checks too).
document.addEventListener("input", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement)) return;
  const other = { probability_a: "probability_b", probability_b: "probability_a" }[input.name];
  if (!other || input.value === "") return;
  const value = Math.min(99, Math.max(1, Number(input.value)));
  const partner = input.form && input.form.elements.namedItem(other);
  if (partner instanceof HTMLInputElement) partner.value = String(100 - value);
});

// The socket re-sends the judge's panel whenever anything in the debate changes (a snapshot on
// connect, each speech finishing). A panel for the step the judge is already on must not wipe
// what they are typing: skip it. A panel for a new step replaces the old one.
document.addEventListener("htmx:oobBeforeSwap", (event) => {
  const { target, fragment } = event.detail;
  if (!(target instanceof HTMLElement) || target.id !== "judge-panel") return;
  const incoming = fragment.id === "judge-panel" ? fragment : fragment.querySelector("#judge-panel");
  if (incoming && incoming.dataset.step && incoming.dataset.step === target.dataset.step) {
    event.preventDefault();
  }
});

// A judge's submit commits, and the socket's push for that commit usually arrives before the
// POST's own answer and replaces the panel, form and all. The answer (the same step, for when
// the socket is down) then has nothing left to swap into: drop it, rather than let htmx look
// for its out-of-band targets under a form no longer on the page. htmx fires beforeSwap on the
// old panel, which no longer bubbles to the document: listen on the panel itself.
document.addEventListener("htmx:beforeRequest", (event) => {
  const panel = event.detail.target;
  if (!(panel instanceof HTMLElement) || panel.id !== "judge-panel") return;
  panel.addEventListener("htmx:beforeSwap", (swap) => {
    if (!panel.isConnected) swap.detail.shouldSwap = false;
  });
});
