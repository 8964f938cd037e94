// The automations editor's few behaviours htmx does not cover: removing an
// action row, focus after adding one, aria-invalid on the patterns as they are
// checked, Ctrl+Enter to save, and showing refusals (403 etc.) instead of
// dropping them. Its words come from Django's JavaScriptCatalog (gettext,
// loaded first by base.html).
(function () {
  "use strict";

  // A form with errors (400) or a conflict (409) comes back as the form to
  // show; other refusals are reported in the page's alert line.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "40[09]", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
  ];

  function alertLine() {
    return document.getElementById("automations-alert");
  }

  document.addEventListener("htmx:responseError", function (event) {
    var line = alertLine();
    if (!line) return;
    var xhr = event.detail.xhr;
    var text = (xhr.responseText || "").trim();
    if (!text || text.charAt(0) === "<") {
      text = interpolate(gettext("The server refused (%s)."), [xhr.status]);
    }
    line.textContent = text;
    line.hidden = false;
  });

  document.addEventListener("htmx:sendError", function () {
    var line = alertLine();
    if (!line) return;
    line.textContent = gettext("The server cannot be reached; nothing was saved.");
    line.hidden = false;
  });

  document.addEventListener("htmx:beforeRequest", function () {
    var line = alertLine();
    if (line) line.hidden = true;
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest(".remove-action");
    if (!button) return;
    var row = button.closest(".action-row");
    if (row) row.remove();
    var add = document.getElementById("add-action");
    if (add) add.focus();
  });

  // "Use the Unicode form": that line of the patterns becomes the suggestion,
  // and the patterns are checked again.
  document.addEventListener("click", function (event) {
    var button = event.target.closest(".use-suggestion");
    if (!button) return;
    var patterns = document.getElementById("id_patterns");
    if (!patterns) return;
    var lines = patterns.value.split("\n");
    var at = Number(button.dataset.line) - 1; // the line as numbered in the warning
    if (lines[at] === undefined || lines[at].trim() !== button.dataset.pattern) return;
    lines[at] = button.dataset.suggestion;
    patterns.value = lines.join("\n");
    patterns.dispatchEvent(new Event("change", { bubbles: true }));
    patterns.focus();
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target.id === "action-list") {
      var rows = target.querySelectorAll(".action-row select");
      if (rows.length) rows[rows.length - 1].focus();
    } else if (target.id === "pattern-feedback") {
      var patterns = document.getElementById("id_patterns");
      if (!patterns) return;
      if (target.querySelector(".problem, .error")) {
        patterns.setAttribute("aria-invalid", "true");
      } else {
        patterns.removeAttribute("aria-invalid");
      }
    }
  });

  // Enter submits single-line inputs already; in a text box it is a new line,
  // so Ctrl+Enter (Cmd+Enter) submits the form the box belongs to.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var box = event.target;
    if (!box.matches || !box.matches("textarea")) return;
    var form = box.form;
    if (!form || !form.closest(".automations")) return;
    event.preventDefault();
    form.requestSubmit();
  });
})();
