// Monitor pages: a form with data-confirm asks before it is sent (the
// monitor's Delete). A plain form, so without this script it is sent at once.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
})();
