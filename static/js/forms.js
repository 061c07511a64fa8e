// Behaviour htmx would otherwise run from hx-on attributes, which need eval (refused by the
// Content-Security-Policy): a form marked data-reset-on-success empties after a good request.
(function () {
  "use strict";
  document.addEventListener("htmx:afterRequest", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.hasAttribute("data-reset-on-success")
        && event.detail.successful) {
      form.reset();
    }
  });
})();
