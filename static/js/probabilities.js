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
