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
