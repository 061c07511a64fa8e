// Loaded in <head>, not deferred: marks the page as scripted before it paints, so phones start
// with the menu folded (CSS keys on .js), then opens and closes it from the Menu button.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest ? event.target.closest(".menu-toggle") : null;
    if (!toggle) return;
    const menu = document.getElementById(toggle.getAttribute("aria-controls"));
    const open = menu.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
})();
