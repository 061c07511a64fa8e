// Preview: → and ← (or N and P) step through the queue's items.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const rel = { ArrowRight: "next", n: "next", ArrowLeft: "prev", p: "prev" }[event.key];
    const link = rel && document.querySelector('a[rel="' + rel + '"]');
    if (link) link.click();
  });
})();
