// The webhook deliveries pages: "Replay selected" waits for a ticked box (the
// server refuses an empty choice too, with its reason), and that refusal (a
// 400) is shown in place: htmx would drop it by default.
(function () {
  "use strict";
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "400", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
  ];

  function sync() {
    var button = document.getElementById("replay-selected");
    var form = document.getElementById("replay-form");
    if (!button || !form) return;
    var ticked = form.querySelector("input[name=delivery]:checked");
    button.disabled = !ticked;
    var hint = document.getElementById("replay-hint");
    if (hint) hint.hidden = !!ticked;
  }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.name === "delivery") sync();
  });
  // The list region is swapped (filters, the next page, after a replay).
  document.addEventListener("htmx:afterSettle", sync);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", sync);
  } else {
    sync();
  }
})();
